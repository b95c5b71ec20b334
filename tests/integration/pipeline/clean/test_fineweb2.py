"""The fineweb2 recipe on real pages: Chinese first (zh-web-A, a real mixed crawl), with English and Japanese in the
same run, each judged by its own language's values and word tokenizer."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datatrove.data import Document
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.utils.word_tokenizers import load_word_tokenizer

from tests.support.fineweb2 import BIG5_MARK, ZH_WEB, planted_crawl, read_jsonl_gz
from pipeline.clean import build_cleaning_steps, load_recipe
from pipeline.read.charsets import decode_page
from pipeline.clean.languages import LanguageConfigError, load_languages, read_language_file
from pipeline.clean.run import clean
from pipeline.clean.words import SharedWordTokenizer
from pipeline.prepare import main as prepare_main
from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer

LANGUAGES = ["zh", "ja", "ko", "de", "fr", "es", "ru", "pt", "it", "ar", "vi"]
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


def test_the_language_files_hold_fineweb2s_values():
    registry = load_languages()
    assert sorted(registry) == sorted(LANGUAGES)
    zh = registry["zh"]
    assert zh.code == "cmn_Hani" and zh.min_language_score == 0.65
    assert zh.values["dup_line_frac"] == 0.287 and zh.values["line_punct_thr"] == 0.106
    assert {"的", "是", "了", "為"} <= set(zh.values["stopwords"])
    assert registry["ja"].code == "jpn_Jpan" and registry["ar"].code == "arb_Arab"
    assert zh.gopher_repetition()["dup_para_frac"] == 0 and zh.fineweb_quality()["short_line_thr"] == 999
    assert zh.fineweb_quality()["char_duplicates_ratio"] == 0.1 and zh.gopher_quality()["min_stop_words"] == 2
    assert "。”" in zh.fineweb_quality()["stop_chars"] and "stop_chars" not in registry["de"].fineweb_quality()


def test_a_fineweb2_file_dropped_in_unchanged_works(tmp_path):
    values = {key: value for key, value in yaml.safe_load(
        (Path(load_languages()["zh"].path)).read_text(encoding="utf-8")).items()
        if key not in ("lid176_label", "min_language_score")}
    for code, label in (("yue_Hani", "yue"), ("tha_Thai", "th"), ("lzh_Hani", "zh")):
        (tmp_path / f"{code}.yml").write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        language = read_language_file(tmp_path / f"{code}.yml")
        assert language.label == label and language.min_language_score == 0.65
    (tmp_path / "cmn_Hani.yml").write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    with pytest.raises(LanguageConfigError, match="both judge lid.176 label 'zh'"):
        load_languages(tmp_path)  # lzh_Hani and cmn_Hani would both judge `zh`


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


def test_the_filters_see_segmented_words_in_the_recipe(tmp_path):
    plan = build_cleaning_steps(load_recipe("fineweb2"), str(tmp_path), ["zh", "en"], html_input=True)
    steps = {planned.name: planned.step for planned in plan.recipe_steps}
    for name in FILTER_STEPS:
        judges = steps[name].judges
        assert set(judges) == {"zh", "en"}
        assert judges["zh"].language.language == "cmn_Hani" and judges["en"].language.language == "en"
    assert steps["gopher_repetition"].judges["zh"].language is steps["gopher_quality"].judges["zh"].language
    assert steps["language_filter"].language_thresholds == {"zh": 0.65}


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


def test_cjk_pages_decode_through_their_supersets():
    detect = lambda content: None  # noqa: E731 - no guessing needed: the declared charset is enough
    gbk_only = "<html><head><meta charset=gb2312></head><body>朱镕基与陶喆的名字。</body></html>"
    assert decode_page(gbk_only.encode("gbk"), None, detect) == (gbk_only, "gb18030")  # <meta> says gb2312
    cp950 = "<p>這副碁盤的價格是€120。</p>"
    assert decode_page(cp950.encode("cp950"), "big5", detect) == (cp950, "cp950")
    hkscs = "<p>香港的𨋢字</p>"
    assert decode_page(hkscs.encode("big5hkscs"), "Big5", detect) == (hkscs, "big5hkscs")
    resaved = "<meta charset=gb2312><p>网页已经另存为 UTF-8。</p>"
    assert decode_page(resaved.encode("utf-8"), "gbk", detect) == (resaved, "utf-8")


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


def test_per_language_dedup_builds_only_the_tokenizers_of_languages_it_meets(tmp_path, monkeypatch):
    """Korean's word tokenizer needs kiwipiepy, an optional extra: a Chinese run must not ask for it."""
    import pipeline.dedup as dedup

    built = []
    real = dedup.word_tokenizer
    monkeypatch.setattr(dedup, "word_tokenizer", lambda code: built.append(code) or real(code))
    step = dedup.minhash_signature(dedup.DedupConfig(per_language="fineweb2"), str(tmp_path / "near"))
    assert built == ["en"]  # the default, for documents of a language without a file
    texts = [("今天天气很好，我们一起去公园散步吧。" * 3, "zh"), ("The weather is fine today. " * 3, "en"),
             ("人民日报发表社论，庆祝新年的到来。" * 3, "zh")]
    documents = [Document(text=text, id=str(i), metadata={"language": language})
                 for i, (text, language) in enumerate(texts)]
    step.run(iter(documents), rank=0, world_size=1)  # consumes the documents, writes signatures
    assert built == ["en", "cmn_Hani"] and "ko" not in step.tokenizers
    assert any((tmp_path / "near").rglob("*.minhash.sig"))


def test_a_missing_optional_word_tokenizer_names_the_extra(monkeypatch):
    import importlib.util

    from pipeline.clean.languages import check_word_tokenizer

    find_spec = importlib.util.find_spec
    hidden = lambda name, *args: None if name.startswith("kiwi") else find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    with pytest.raises(LanguageConfigError) as error:
        check_word_tokenizer("kor_Hang")
    assert str(error.value) == ("the word tokenizer for kor_Hang (KiwiTokenizer) needs kiwipiepy, kiwipiepy_model: "
                                "pip install -e '.[multilingual]' (the versions datatrove works with)")
    check_word_tokenizer("cmn_Hani")  # jieba is a dependency of the project


def test_opencc_converts_chinese_documents_only_when_switched_on(tmp_path):
    recipe = yaml.safe_load(Path(load_recipe("fineweb2").path).read_text(encoding="utf-8"))
    assert next(s for s in recipe["steps"] if s["step"] == "opencc")["enabled"] is False  # both scripts by default
    for step in recipe["steps"]:
        step["enabled"] = step["step"] in ("language_filter", "opencc")
    (tmp_path / "t2s.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    plan = build_cleaning_steps(load_recipe(str(tmp_path / "t2s.yaml")), str(tmp_path), ["zh", "ja"], html_input=False)
    opencc = next(p.step for p in plan.recipe_steps if p.name == "opencc")
    documents = [Document(text="臺灣的資訊產業與軟體開發", id="tw", metadata={"language": "zh"}),
                 Document(text="東京の電車は時間通りに來る", id="ja", metadata={"language": "ja"})]
    converted = {d.id: d.text for d in opencc.run(iter(documents))}
    assert converted == {"tw": "台湾的资讯产业与软体开发", "ja": "東京の電車は時間通りに來る"}
