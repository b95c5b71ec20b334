"""The fineweb2 recipe on real pages: Chinese first (zh-web-A, a real mixed crawl), with English and Japanese in the
same run, each judged by its own language's values and word tokenizer (the recipe's parts in process:
tests/unit/pipeline/clean/test_fineweb2.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datatrove.data import Document
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.utils.word_tokenizers import load_word_tokenizer

from pipeline.clean import load_recipe
from pipeline.clean.languages import load_languages
from pipeline.clean.run import clean
from pipeline.clean.words import SharedWordTokenizer
from pipeline.prepare import main as prepare_main
from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer
from tests.support.fineweb2 import BIG5_MARK, ZH_WEB, planted_crawl, read_jsonl_gz

FILTER_STEPS = ("gopher_repetition", "fineweb_quality", "gopher_quality")
HAN = lambda text: sum("\u4e00" <= c <= "\u9fff" for c in text)  # noqa: E731


@pytest.fixture(scope="module")
def mixed_run(shared_data, tmp_path_factory):
    """zh-web-A (202 Chinese, 10 English, 9 Japanese pages) cleaned with --languages zh,en,ja by the fineweb2 recipe
    without the steps that rewrite text after the filters (so the kept text is the text the filters judged)."""
    folder = tmp_path_factory.mktemp("fineweb2")
    recipe = yaml.safe_load(Path(load_recipe("fineweb2").path).read_text(encoding="utf-8"))
    for step in recipe["steps"]:
        if step["step"] in ("c4_quality", "ftfy", "pii", "symbol_lines"):
            step["enabled"] = False
    (folder / "fineweb2-filters.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    out = folder / "clean"
    summary = clean(str(shared_data / ZH_WEB), str(out), str(folder / "fineweb2-filters.yaml"), ["zh", "en", "ja"],
                    workers=1)
    return out, summary


def test_chinese_words_are_segmented_words(mixed_run):
    out, _ = mixed_run
    texts = [doc["text"] for doc in read_jsonl_gz(out / "kept") if doc["metadata"]["language"] == "zh"]
    assert len(texts) > 80
    shared, datatrove_zh = SharedWordTokenizer("cmn_Hani"), load_word_tokenizer("cmn_Hani")
    for text in texts[:40]:
        words = shared.word_tokenize(text)
        assert words == datatrove_zh.word_tokenize(text)  # jieba's words, as datatrove's spaCy gives them
        han_words = [w for w in words if HAN(w) == len(w)]
        assert np.mean([len(w) for w in han_words]) < 2.5  # words, not sentences (a few long dictionary names)
        assert sum(len(w) >= 8 for w in han_words) <= 0.02 * len(han_words) and max(map(len, han_words)) <= 20
    # datatrove's two-letter "zh" is spaCy's xx: a Chinese sentence stays one word (why codes are lang_Script)
    sentence = "北京是中华人民共和国的首都，也是全国的政治中心。"
    assert load_word_tokenizer("zh").word_tokenize(sentence)[0] == "北京是中华人民共和国的首都，也是全国的政治中心"
    assert SharedWordTokenizer("cmn_Hani").word_tokenize(sentence)[:4] == ["北京", "是", "中华人民共和国", "的"]


def test_each_language_is_judged_by_its_own_values(mixed_run):
    """Every document that reached the quality filters gets the decision that datatrove's own classes, built from
    its language's file (FineWeb-2's way) or FineWeb's English values, give it."""
    out, summary = mixed_run
    registry = load_languages()
    recipe = {s.step: s for s in load_recipe("fineweb2").steps}

    def reference_chain(language):
        if language in registry:
            v = registry[language]
            return [GopherRepetitionFilter(**v.gopher_repetition(), language=v.code),
                    FineWebQualityFilter(**v.fineweb_quality(), language=v.code),
                    GopherQualityFilter(**v.gopher_quality(), language=v.code)]
        tuples = lambda params: {k: tuple(map(tuple, v)) if k.endswith("n_grams") else v  # noqa: E731
                                 for k, v in params.items()}
        return [GopherRepetitionFilter(**tuples(recipe["gopher_repetition"].params), language="en"),
                FineWebQualityFilter(**recipe["fineweb_quality"].params, language="en"),
                GopherQualityFilter(**recipe["gopher_quality"].params, language="en")]

    chains = {language: reference_chain(language) for language in ("zh", "en", "ja")}
    by_step = {s["step"]: s for s in summary["steps"]}
    documents = [(doc, True) for doc in read_jsonl_gz(out / "kept")]
    for name in FILTER_STEPS:
        number = [s["step"] for s in summary["steps"]].index(name) + 1
        documents += [(doc, doc["metadata"]["filter_reason"])
                      for doc in read_jsonl_gz(out / "excluded" / f"{number:02d}_{name}")]
    counted = {"zh": 0, "en": 0, "ja": 0}
    for doc, expected in documents:
        language = doc["metadata"]["language"]
        verdict = True
        for judge in chains[language]:
            result = judge.filter(Document(text=doc["text"], id=doc["id"]))
            if not (result is True or (isinstance(result, tuple) and result[0])):
                verdict = result[1] if isinstance(result, tuple) else "unnamed"
                break
        assert verdict == expected, (language, doc["metadata"].get("url"), verdict, expected)
        counted[language] += 1
    assert counted["zh"] > 150 and counted["en"] >= 3 and counted["ja"] >= 3
    for name in FILTER_STEPS:
        assert by_step[name]["passed_other_language"] == 0  # every kept language has its own judge


def test_the_report_counts_each_language(mixed_run):
    out, summary = mixed_run
    languages = summary["by_language"]
    assert {"zh", "en", "ja"} <= set(languages)
    zh = languages["zh"]
    assert zh["steps"][0]["step"] == "language_filter" and zh["steps"][-1]["docs_out"] == zh["kept"]
    assert zh["kept"] == sum(1 for d in read_jsonl_gz(out / "kept") if d["metadata"]["language"] == "zh")
    assert sum(zh["lid_scores"].values()) >= zh["steps"][0]["docs_in"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Per language" in report and "### zh" in report and "### ja" in report


def test_prepare_a_chinese_crawl_into_chinese_shards(shared_data, tmp_path):
    crawl = tmp_path / "zh-planted.warc.gz"
    planted = planted_crawl(shared_data, crawl)
    out = tmp_path / "shards"
    prepare_main(["--corpus", "commoncrawl", "--recipe", "fineweb2", "--languages", "zh", "--input", str(crawl),
                  "--output", str(out), "--workers", "1", "--val-tokens", "0"])
    manifest = read_manifest(out)
    assert manifest["cleaning"]["languages"] == ["zh"] and manifest["dedup"]["config"]["per_language"] == "fineweb2"
    encoding = get_tokenizer("gpt2").encoding
    text = encoding.decode(np.concatenate([open_shard(out / s["file"]) for s in manifest["shards"]]).tolist())
    documents = [d for d in text.split("<|endoftext|>") if d.strip()]
    assert len(documents) == manifest["totals"]["documents"] > 80
    visible = lambda d: len(d.replace("\n", "").replace(" ", ""))  # noqa: E731
    assert all(HAN(d) > 0.2 * visible(d) for d in documents)  # Chinese text only (a Q&A may quote a stack trace)
    assert HAN(text) > 0.7 * visible(text)
    assert "<div" not in text and "<p>" not in text and "</a>" not in text  # no HTML
    duplicates = read_jsonl_gz(out / "duplicates")
    repost = [d for d in duplicates if d["metadata"]["url"] == planted["repost"]]
    assert repost and repost[0]["metadata"]["dedup_reason"] == "near"  # caught by MinHash on jieba's words
    # FineWeb-2's order: language ID, then dedup, then the quality filters on what dedup kept (a stage of its own)
    stages = list(manifest["stage_seconds"])
    assert stages.index("read") < stages.index("dedup-filter") < stages.index("filter") < stages.index("tokenize")
    report = json.loads((out / "cleaning" / "report.json").read_text(encoding="utf-8"))
    order = [s["step"] for s in report["steps"]]
    after_language_id = order.index("language_filter") + 1
    assert order[after_language_id:after_language_id + 2] == ["dedup", "gopher_repetition"]
    dedup_row = report["steps"][order.index("dedup")]
    assert dedup_row["dropped"] == {k: n for k, n in manifest["dedup"]["removed"].items() if n}
    assert dedup_row["exclusion_folder"] == "duplicates" and report["accounting_ok"]
    assert report["documents"]["kept"] == manifest["totals"]["documents"]
    assert [row["step"] for row in report["by_language"]["zh"]["steps"]][:3] == \
        ["language_filter", "dedup", "gopher_repetition"]
    # the Big5-HKSCS copy of a Hong Kong article decoded: kept, or removed as a copy of the article
    big5 = [d for d in duplicates if d["metadata"]["url"] == planted["big5"]]
    assert BIG5_MARK in text.replace(BIG5_MARK, "", 1) or (
        big5 and BIG5_MARK in big5[0]["text"] and big5[0]["metadata"]["charset"] == "big5hkscs"), \
        [(d["metadata"].get("url"), d["metadata"].get("filter_reason"))
         for d in read_jsonl_gz(out / "cleaning" / "excluded") if d["metadata"].get("url") == planted["big5"]]
