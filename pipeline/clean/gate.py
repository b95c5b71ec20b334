"""The language gate: skip, before extraction, the pages that cannot be in a kept language.

A run that keeps only some languages (`--languages zh`) would otherwise pay Trafilatura's extraction (tens of ms
of CPU per page) for every page of a crawl, most of which the language filter drops right after. The gate looks at
the page's raw HTML with cheap means only, and keeps a page unless it is sure:

  * the visible text: the HTML with <script>, <style> and comments removed, then every tag (a regex, no DOM), and
    numeric character references (&#20013;) decoded;
  * scripts: for a language written in its own script (zh: Han; ja: kana, which Chinese lacks; ko: Hangul; ru,
    uk: Cyrillic; ar, fa: Arabic; el, th, he, hi, ...; SCRIPT_OF), the page is kept when its visible text holds
    at least MIN_SCRIPT_CHARS characters of that script. A kept document is far longer than that (FineWeb-2's quality
    filters want dozens of words), and what Trafilatura extracts is visible text, so the bar only turns away pages
    with at most a word or a menu entry in the script. For zh a page with kana for more than KANA_SHARE of its
    Han characters is Japanese and skipped (Chinese pages kept by the chain had at most 0.004, Japanese ones 0.4);
  * Latin-script languages (es, fr, de, ...: their letters are everyone's): fastText lid.176 (the language filter's
    own model) on the visible text; the page is kept when the language is among its LATIN_TOP_K guesses with at
    least LATIN_MIN_SCORE, or when the visible text is too short to judge;
  * a language the gate knows nothing of, or `--languages all`: every page passes (the gate does nothing).

The visible text is computed only for pages with enough characters of the script in their raw HTML (stripping only
removes characters), once; that count itself is first bounded from above on the page's UTF-8 bytes (the lead bytes
of the script's characters, with bytes.translate: most pages of a crawl hold none, and four times cheaper than a
regex scan), and the page's "&#" counted only when that bound says it may have MIN_SCRIPT_CHARS of them. The visible text is cut to
MAX_VISIBLE_CHARS characters for fastText. Pages it skips are counted in the report as the step `language_gate`
and written to its exclusion folder with the reason `gate_<script>` or `gate_lid`: the first WHOLE_PAGES of each
task whole, the others as pointers (WARC-Record-ID, URL, size; the page stays in its WARC file). Writing every
skipped page whole would cost more CPU than the gate saves (gzip of the HTML: ~9 ms a page, measured). With WARC
input it is on by default unless the kept languages are `en` alone (FineWeb's English run stays as published;
`--language-gate on` gates it too); `--language-gate off` (or `- step: language_gate` with `enabled: false` in a
recipe) turns it off.
How its recall was measured: docs/data.md ("The language gate").
"""
import html as html_module
import re
from itertools import islice

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

MIN_SCRIPT_CHARS = 20
KANA_SHARE = 0.25
LATIN_TOP_K, LATIN_MIN_SCORE = 10, 0.01
MIN_LID_CHARS = 200  # visible text shorter than this: fastText's guess is not worth acting on
MAX_VISIBLE_CHARS = 20000
WHOLE_PAGES = 20  # skipped pages per task written whole (the report's examples); the rest as pointers

# <script ...>...</script>, <style ...>...</style>, <!--...-->, each up to its first end: the same matches as
# `<script\b.*?</script\s*>`, written "unrolled" (no lazy .*? that tries the end at every character): half the time
_INVISIBLE = re.compile(r"<script\b[^<]*(?:<(?!/script\s*>)[^<]*)*</script\s*>"
                        r"|<style\b[^<]*(?:<(?!/style\s*>)[^<]*)*</style\s*>"
                        r"|<!--[^-]*(?:-(?!->)[^-]*)*-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d"
SCRIPTS = {  # character classes of the scripts the gate counts
    "han": HAN, "kana": KANA, "hangul": "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f",
    "cyrillic": "\u0400-\u052f", "arabic": "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff",
    "greek": "\u0370-\u03ff\u1f00-\u1fff", "hebrew": "\u0590-\u05ff", "thai": "\u0e00-\u0e7f",
    "lao": "\u0e80-\u0eff", "khmer": "\u1780-\u17ff", "myanmar": "\u1000-\u109f", "devanagari": "\u0900-\u097f",
    "bengali": "\u0980-\u09ff", "gurmukhi": "\u0a00-\u0a7f", "gujarati": "\u0a80-\u0aff", "oriya": "\u0b00-\u0b7f",
    "tamil": "\u0b80-\u0bff", "telugu": "\u0c00-\u0c7f", "kannada": "\u0c80-\u0cff", "malayalam": "\u0d00-\u0d7f",
    "sinhala": "\u0d80-\u0dff", "georgian": "\u10a0-\u10ff", "armenian": "\u0530-\u058f",
    "ethiopic": "\u1200-\u139f", "tibetan": "\u0f00-\u0fff", "thaana": "\u0780-\u07bf",
}
_SCRIPT_GROUPS = {
    "han": "zh wuu yue gan", "kana": "ja", "hangul": "ko",
    "cyrillic": "ru uk bg be mk kk ky tg mn tt ba cv ce os sah av bxr mhr mrj myv krc lez xal udm kv",
    "arabic": "ar fa ur ps ckb ug sd arz azb ku", "greek": "el", "hebrew": "he yi", "thai": "th", "lao": "lo",
    "khmer": "km", "myanmar": "my", "devanagari": "hi mr ne sa new mai bh bpy gom", "bengali": "bn as",
    "gurmukhi": "pa", "gujarati": "gu", "oriya": "or", "tamil": "ta", "telugu": "te", "kannada": "kn",
    "malayalam": "ml", "sinhala": "si", "georgian": "ka xmf", "armenian": "hy", "ethiopic": "am ti",
    "tibetan": "bo", "thaana": "dv",
}
SCRIPT_OF = {code: script for script, codes in _SCRIPT_GROUPS.items() for code in codes.split()}
# Written in the Latin script (lid.176 labels): judged by fastText on the visible text
LATIN = set("""af als an ast az bar bcl br bs ca cbk ceb co cs cy da de diq dsb dty en eo es et eu fi fr frr fy ga
gd gl gn gv hif hr hsb ht hu ia id ie ilo io is it jbo jv kw la lb li lmo lrc lt lv mg min mt mwl nah nap nds nl nn
no oc pam pfl pl pms pt qu rm ro rue sc scn sco sh sk sl so sq su sv sw tk tl tr vec vep vi vls vo wa war yo
""".split())
_COUNTERS = {script: re.compile(f"[{chars}]") for script, chars in SCRIPTS.items()}
_KANA = re.compile(f"[{KANA}]")
_REFERENCE = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,6})|([0-9]{1,7}))")


def code_ranges(chars: str) -> list[tuple[int, int]]:
    """The (first, last) code points of a character class written as in SCRIPTS ("a-zA-Z", single characters)."""
    ranges, i = [], 0
    while i < len(chars):
        last = chars[i + 2] if i + 2 < len(chars) and chars[i + 1] == "-" else chars[i]
        ranges.append((ord(chars[i]), ord(last)))
        i += 3 if last is not chars[i] else 1
    return ranges


def lead_bytes(chars: str) -> bytes:
    """The bytes that start the UTF-8 encoding of a character of the class: each character of the class puts exactly
    one of them in a UTF-8 text (continuation bytes are 0x80-0xBF, never a lead), so counting them in the page's UTF-8
    bytes bounds the class's characters from above, at the speed of bytes.translate (4x a regex scan)."""
    leads = set()
    for first, last in code_ranges(chars):
        for code in range(first, last + 1, 64):  # (a lead byte covers at least 64 consecutive code points)
            leads.add(chr(code).encode("utf-8", "surrogatepass")[0])
        leads.add(chr(last).encode("utf-8", "surrogatepass")[0])
    return bytes(sorted(leads))


def dropping_all_but(keep: bytes) -> bytes:
    """bytes.translate's `delete` argument that leaves only the bytes in `keep`."""
    return bytes(b for b in range(256) if b not in keep)


def visible_text(page: str) -> str:
    """The page's text as a crude browser would show it: no scripts, styles, comments or tags; &#NNNN; decoded."""
    text = _TAG.sub(" ", _INVISIBLE.sub(" ", page))
    if "&" in text:
        text = html_module.unescape(text)
    return _SPACE.sub(" ", text)


def count(script: str, text: str) -> int:
    return len(_COUNTERS[script].findall(text))


def referenced_characters(page: str) -> str:
    """The characters the page writes as numeric references (&#20013; &#x4E2D;), side by side."""
    found = []
    for hexadecimal, decimal in _REFERENCE.findall(page):
        code = int(hexadecimal, 16) if hexadecimal else int(decimal)
        if code <= 0x10FFFF:
            found.append(chr(code))
    return "".join(found)


def has_at_least(script: str, text: str, n: int) -> bool:
    """Whether `text` holds n characters of `script` (stops at the n-th; a pure-ASCII text holds none)."""
    if text.isascii():
        return False
    first = _COUNTERS[script].search(text)  # (most pages hold none: one scan in C)
    return first is not None and sum(1 for _ in islice(_COUNTERS[script].finditer(text, first.start()), n)) >= n


class GateRule:
    """What `LanguageGate` checks for a set of kept languages (built once per step)."""

    def __init__(self, languages):
        languages = list(languages or [])
        self.scripts = sorted({SCRIPT_OF[code] for code in languages if code in SCRIPT_OF})
        self.latin = sorted(code for code in languages if code in LATIN)
        # a language of neither kind (or 'all'): the gate cannot rule a page out
        self.open = not languages or any(code not in SCRIPT_OF and code not in LATIN for code in languages)
        self.japanese_is_not_chinese = "han" in self.scripts and "kana" not in self.scripts
        # per script: what to delete from the page's UTF-8 bytes to leave its lead bytes, "&" and "#" (bound())
        self.leads = {script: dropping_all_but(lead_bytes(SCRIPTS[script]) + b"&#") for script in self.scripts}
        self._lid = None

    def bound(self, script: str, raw: bytes) -> tuple[int, int]:
        """(at least as many as the script's characters in the page, at least as many as its "&#"), in one pass
        (every "&#" of the page stays side by side when the bytes between others are deleted)."""
        left = raw.translate(None, self.leads[script])
        return len(left) - left.count(b"&") - left.count(b"#"), left.count(b"&#")

    def lid(self):
        if self._lid is None:
            from pipeline.clean.langid import OfflineFT176LID

            self._lid = OfflineFT176LID(self.latin)
        return self._lid

    def check(self, page: str) -> tuple[bool, str]:
        """(keep, reason): reason names what decided (`<script>` or `lid` when kept, `gate_...` when skipped)."""
        if self.open:
            return True, "open"
        text = None  # the visible text, made once, only when needed
        raw = None if page.isascii() else page.encode("utf-8", "surrogatepass")
        references = None  # whether the page has MIN_SCRIPT_CHARS "&#" at least (counted once, when needed)
        for script in self.scripts:  # the raw HTML first: stripping only removes characters
            # a cheap upper bound first: most pages hold no character of the script and few "&#" (module doc)
            characters, ampersands = self.bound(script, raw) if raw is not None else (0, page.count("&#"))
            if references is None and ampersands >= MIN_SCRIPT_CHARS:
                references = page.count("&#") >= MIN_SCRIPT_CHARS
            if characters < MIN_SCRIPT_CHARS and not references:
                continue
            if not (characters >= MIN_SCRIPT_CHARS and has_at_least(script, page, MIN_SCRIPT_CHARS)):
                # characters written as &#NNNN; (old sites) count too: the page's references, decoded apart
                referenced = count(script, referenced_characters(page)) if references else 0
                if not referenced or referenced + characters < MIN_SCRIPT_CHARS or \
                        referenced + count(script, page) < MIN_SCRIPT_CHARS:
                    continue
            text = visible_text(page) if text is None else text
            if not has_at_least(script, text, MIN_SCRIPT_CHARS):
                continue
            if script == "han" and self.japanese_is_not_chinese:
                kana = len(_KANA.findall(text))
                if kana and kana > KANA_SHARE * count("han", text):
                    continue
            return True, script
        if self.latin:
            text = (visible_text(page) if text is None else text)[:MAX_VISIBLE_CHARS]
            if len(text) < MIN_LID_CHARS:
                return True, "short"
            labels, scores = self.lid().model.predict(text, k=LATIN_TOP_K)
            guesses = {label.removeprefix("__label__"): float(score) for label, score in zip(labels, scores)}
            if any(guesses.get(code, 0.0) >= LATIN_MIN_SCORE for code in self.latin):
                return True, "lid"
            return False, "gate_lid"
        return False, f"gate_{'_'.join(self.scripts)}"


class LanguageGate(BaseFilter):
    """Drops the pages (raw HTML) that cannot be in one of `languages`, before extraction (module doc)."""

    name = "🚪 Language gate"

    def __init__(self, languages=None, exclusion_writer=None, count_tokens=None):
        super().__init__(exclusion_writer=exclusion_writer)  # (count_tokens: pages have no tokens yet)
        self.languages = list(languages or [])
        self.rule = GateRule(self.languages)
        self.whole_pages_left = WHOLE_PAGES

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        try:
            keep, reason = self.rule.check(doc.text)
        except Exception:  # noqa: BLE001 - the gate must never lose a page: on any surprise it lets it through
            keep, reason = True, "error"
        self.stat_update(f"{'passed' if keep else 'skipped'}_{reason}")
        if keep:
            return True
        doc.metadata["html_chars"] = len(doc.text)
        if self.whole_pages_left > 0:
            self.whole_pages_left -= 1
        else:  # a pointer: the page is in its WARC file under this id (module doc)
            doc.text = ""
        return False, reason
