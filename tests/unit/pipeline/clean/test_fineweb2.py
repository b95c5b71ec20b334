"""The fineweb2 recipe's parts in process: the language files hold FineWeb-2's values, a FineWeb-2 file works as it is,
each filter gets its language's judge, CJK pages decode through their supersets, per-language dedup builds only the word
tokenizers it meets, a missing optional one names the extra, and OpenCC converts only when switched on. Whole runs on a
real mixed crawl: tests/integration/pipeline/clean/test_fineweb2.py."""
from pathlib import Path

import pytest
import yaml
from datatrove.data import Document

from pipeline.clean import build_cleaning_steps, load_recipe
from pipeline.clean.languages import LanguageConfigError, load_languages, read_language_file
from pipeline.read.charsets import decode_page

LANGUAGES = ["zh", "ja", "ko", "de", "fr", "es", "ru", "pt", "it", "ar", "vi"]
FILTER_STEPS = ("gopher_repetition", "fineweb_quality", "gopher_quality")


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


def test_the_filters_see_segmented_words_in_the_recipe(tmp_path):
    plan = build_cleaning_steps(load_recipe("fineweb2"), str(tmp_path), ["zh", "en"], html_input=True)
    steps = {planned.name: planned.step for planned in plan.recipe_steps}
    for name in FILTER_STEPS:
        judges = steps[name].judges
        assert set(judges) == {"zh", "en"}
        assert judges["zh"].language.language == "cmn_Hani" and judges["en"].language.language == "en"
    assert steps["gopher_repetition"].judges["zh"].language is steps["gopher_quality"].judges["zh"].language
    assert steps["language_filter"].language_thresholds == {"zh": 0.65}


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


def test_per_language_dedup_builds_only_the_tokenizers_of_languages_it_meets(tmp_path, monkeypatch):
    """Korean's word tokenizer needs kiwipiepy, an optional extra: a Chinese run must not ask for it."""
    import pipeline.dedup.stages as dedup

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
