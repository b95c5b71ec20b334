"""The language gate before extraction (pipeline/clean/gate.py) and the Resiliparse extractor option, on real pages
of ../shared/data's crawls. The whole run with the gate's report row: tests/integration/pipeline/clean/test_gate.py."""
import functools
import re

import pytest
from datatrove.data import Document

from pipeline.clean import build_cleaning_steps, load_recipe
from pipeline.clean.chain import cleaning_options
from pipeline.clean.gate import (MIN_SCRIPT_CHARS, SCRIPTS, GateRule, LanguageGate, code_ranges, count,
                                 visible_text)
from pipeline.read.charsets import decode_page
from tests.support.fineweb2 import ARTICLE_URL, read_records

ENGLISH = "https://boingboing.net/2020/12/12/this-deep-funk-hanukkah-song-is-a-holiday-classic-in-the-making.html"
SPANISH = "laprensafl.com/2020/02/17/tenemos-silvia-pinal-para-rato"
RUSSIAN = "https://www.ukrinform.ru/rubric-kyiv/3103218-policia-napravila-delo-minera-stolicnogo-metro-v-sud.html"
JAPANESE = "https://news.biglobe.ne.jp/entertainment/0215/ori_200215_7568645051.html"
META_SAYS_GB2312 = "http://food.39.net/a/210120/8605520.html"  # UTF-8 bytes, <meta charset=gb2312>
GBK_PAGE_PART = "sogou.com/web?query=%C2%B1"  # a 2010s capture served as GBK


@functools.cache
def _records(shared, name):
    return {url: (payload, content_type) for url, payload, content_type in read_records(shared / "crawl" / name)}


def page(shared_data, url_part: str, name: str = "news-200.warc.gz") -> str:
    """The page as the WARC reader decodes it (the HTTP header's charset, UTF-8 first, supersets)."""
    records = _records(shared_data, name)
    url = next(u for u in records if url_part in u)
    payload, content_type = records[url]
    declared = content_type.lower().split("charset=")[1] if "charset=" in content_type.lower() else None
    text, _ = decode_page(payload, declared, lambda _: None)
    return text


def test_chinese_page_kept_for_zh_english_page_skipped(shared_data):
    chinese, english = page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz"), page(shared_data, ENGLISH)
    rule = GateRule(["zh"])
    assert rule.check(chinese) == (True, "han")
    assert rule.check(english) == (False, "gate_han")
    assert GateRule(["zh", "en"]).check(english)[0]  # a second kept language lets it through


def test_a_mostly_english_page_with_a_chinese_article_block_is_kept(shared_data):
    english, chinese = page(shared_data, ENGLISH), page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz")
    paragraph = re.search(r"<p[^>]*>([^<]{60,})</p>", chinese).group(1)  # one real paragraph of the article
    body = english.index(">", english.index("<body")) + 1
    assert GateRule(["zh"]).check(english[:body] + f"<div><p>{paragraph}</p></div>" + english[body:])[0]
    # only a menu entry or two in Chinese: still not a Chinese page
    assert not GateRule(["zh"]).check(english[:body] + "<a href='/zh'>简体中文</a> <a>繁體</a>" + english[body:])[0]


def test_chinese_in_scripts_styles_and_tags_does_not_count(shared_data):
    english = page(shared_data, ENGLISH)
    hidden = "<script>var t='" + "中文" * 50 + "';</script><!-- " + "注释" * 50 + " --><img alt='" + "图片" * 5 + "'>"
    assert not GateRule(["zh"]).check(hidden + english)[0]


def test_lying_charsets_and_character_references(shared_data):
    rule = GateRule(["zh"])
    # UTF-8 bytes whose <meta> still says gb2312, served with a header that says gb2312 too: read as UTF-8, kept
    records = _records(shared_data, "zh-web-A.warc.gz")
    payload = records[META_SAYS_GB2312][0]
    text, charset = decode_page(payload, "gb2312", lambda _: None)
    assert charset == "utf-8" and rule.check(text)[0]
    assert rule.check(page(shared_data, GBK_PAGE_PART, "zh-web-A.warc.gz"))[0]  # real GBK bytes, decoded
    # every Chinese character written as &#NNNNN; (old sites do): decoded before counting
    chinese = page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz")
    escaped = re.sub(r"[\u4e00-\u9fff]", lambda m: f"&#{ord(m.group())};", chinese)
    assert escaped.count("&#") > 1000 and rule.check(escaped) == (True, "han")


def test_japanese_cyrillic_and_latin_pages(shared_data):
    japanese, russian = page(shared_data, JAPANESE), page(shared_data, RUSSIAN)
    spanish, english = page(shared_data, SPANISH), page(shared_data, ENGLISH)
    assert GateRule(["zh"]).check(japanese) == (False, "gate_han")  # Han characters, but kana among them
    assert GateRule(["ja"]).check(japanese) == (True, "kana")
    assert GateRule(["ru"]).check(russian) == (True, "cyrillic") and not GateRule(["ru"]).check(english)[0]
    assert GateRule(["es"]).check(spanish) == (True, "lid")  # Latin script: fastText on the visible text
    assert GateRule(["es"]).check(russian) == (False, "gate_lid")
    assert GateRule(["es"]).check("<p>hola</p>") == (True, "short")  # too little text to judge: kept
    assert GateRule(["xx_unknown"]).open and GateRule(None).open  # nothing known: the gate lets all through


def test_the_byte_bound_never_undercounts_and_decides_at_the_threshold(shared_data):
    # the cheap first look (UTF-8 lead bytes) must bound every script's count from above, or a page would be lost
    text = page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz") + page(shared_data, RUSSIAN) + page(shared_data, JAPANESE)
    text += "".join(chr(c) for chars in SCRIPTS.values() for ends in code_ranges(chars) for c in ends)  # each edge
    every = GateRule(["zh", "ja", "ko", "ru", "ar", "el", "he", "th", "hi", "ka", "hy", "am"])
    for script in every.scripts:
        assert every.bound(script, text.encode())[0] >= count(script, text) > 0, script
    assert every.leads.keys() <= SCRIPTS.keys()
    rule = GateRule(["zh"])
    assert rule.bound("han", "&#20013; #&".encode()) == (0, 1)  # every "&#" counted (an upper bound too)
    for n, expected in ((MIN_SCRIPT_CHARS - 1, False), (MIN_SCRIPT_CHARS, True)):
        assert rule.check("<p>" + "中" * n + "</p>")[0] is expected
        # characters and references together (references count on pages with MIN_SCRIPT_CHARS of them)
        assert rule.check("<p>" + "中" * (n - 1) + "&#20013;" + "&#65;" * MIN_SCRIPT_CHARS + "</p>")[0] is expected
        assert rule.check("<p>" + "&#x4E2D;" * n + "&amp;" * 30 + "</p>")[0] is expected


def test_visible_text_is_a_crude_strip():
    html = "<html><style>p{}</style><p>你好&#19990;&#30028;</p><script>x='隐藏'</script><!-- 注释 --></html>"
    assert visible_text(html).strip() == "你好世界"
    assert MIN_SCRIPT_CHARS <= 30  # far below what any kept document holds (docs/data.md: the measured minimum)


def test_the_gate_step_drops_with_its_reason_and_never_fails(shared_data):
    gate = LanguageGate(["zh"])
    docs = [Document(text=page(shared_data, ENGLISH), id="en"),
            Document(text=page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz"), id="zh")]
    assert [d.id for d in gate.run(iter(docs))] == ["zh"]
    assert gate.stats.stats["skipped_gate_han"].total == 1 and gate.stats.stats["passed_han"].total == 1
    broken = Document(text=None, id="broken")  # whatever goes wrong in the gate keeps the page
    assert gate.filter(broken) is True


def test_the_plan_puts_the_gate_before_extraction_unless_turned_off(tmp_path):
    recipe = load_recipe("fineweb2")

    def names(**kwargs):
        plan = build_cleaning_steps(recipe, str(tmp_path), kwargs.pop("languages", ["zh"]), html_input=True, **kwargs)
        return [p.name for p in plan.recipe_steps][:4]

    assert names() == ["url_filter", "language_gate", "trafilatura", "language_filter"]
    assert names(language_gate=False) == ["url_filter", "trafilatura", "language_filter", "gopher_repetition"]
    assert names(languages=["zh", "xx_unknown"])[1] == "trafilatura"  # it could rule nothing out
    assert names(extractor="resiliparse")[1:3] == ["language_gate", "resiliparse"]
    assert names(languages=["en"])[1] == "trafilatura"  # auto: FineWeb's English run as published
    assert names(languages=["en"], language_gate=True)[1] == "language_gate"
    text_plan = build_cleaning_steps(recipe, str(tmp_path), ["zh"], html_input=False)
    assert "language_gate" not in [p.name for p in text_plan.recipe_steps]  # text input: nothing to gate
    off = tmp_path / "off.yaml"
    off.write_text(recipe_text(recipe).replace("  - step: trafilatura\n",
                                               "  - step: language_gate\n    enabled: false\n  - step: trafilatura\n"))
    plan = build_cleaning_steps(load_recipe(str(off)), str(tmp_path), ["zh"], html_input=True)
    assert "language_gate" not in [p.name for p in plan.recipe_steps]  # the recipe's own `enabled: false`


def recipe_text(recipe) -> str:
    with open(recipe.path, encoding="utf-8") as f:
        return f.read()


def test_cli_options():
    import argparse

    from pipeline.clean.chain import add_cli_arguments

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    assert cleaning_options(parser.parse_args([])) == {"language_gate": None, "extractor": None}
    args = parser.parse_args(["--language-gate", "off", "--extractor", "resiliparse"])
    assert cleaning_options(args) == {"language_gate": False, "extractor": "resiliparse"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--extractor", "boilerpipe"])


def test_resiliparse_extracts_the_article_of_a_real_page(shared_data, tmp_path):
    plan = build_cleaning_steps(load_recipe("fineweb2"), str(tmp_path), ["zh"], html_input=True,
                                extractor="resiliparse")
    step = next(p.step for p in plan.recipe_steps if p.name == "resiliparse")
    chinese = page(shared_data, ARTICLE_URL, "zh-web-A.warc.gz")
    paragraph = re.search(r"<p[^>]*>([^<]{60,})</p>", chinese).group(1).strip()
    docs = list(step.run(iter([Document(text=chinese, id="zh"), Document(text="<html><body></body></html>",
                                                                          id="empty")])))
    assert [d.id for d in docs] == ["zh"]
    assert paragraph[:40] in docs[0].text and "<p" not in docs[0].text and docs[0].metadata["token_count"] > 100
    assert step.stats.stats["dropped_no_main_text"].total == 1
