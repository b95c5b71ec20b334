"""Decoding web pages in legacy Chinese, Japanese and Korean charsets the way browsers do.

Servers and <meta> tags name the charset a page was written in, often by the name of a subset: pages labelled
GB2312 hold GBK characters (人名, 繁體 in GBK), pages labelled Big5 hold Microsoft's CP950 additions (€, 碁, 銹) or
Hong Kong's HKSCS characters. Python's codecs are strict, so a `gb2312` page with one GBK character fails to decode
whole. Browsers (the WHATWG Encoding Standard) read each label as its superset; we do the same:

    GB2312, GBK, x-gbk, ...        -> GB18030 (covers GBK and GB2312)
    Big5, Big5-HKSCS, x-x-big5     -> CP950, then Big5-HKSCS (neither covers the other)
    Shift_JIS, x-sjis, windows-31j -> CP932
    EUC-KR, ks_c_5601-1987         -> CP949

and, before any declared charset, bytes that are valid UTF-8 are read as UTF-8: many pages were re-saved as UTF-8
while their <meta> still says gb2312, and text in a legacy CJK charset is practically never valid UTF-8.
When the server declares no charset, the page's own <meta charset> (or http-equiv) in its first bytes is read.
A page with a few stray bytes no codec accepts is decoded with U+FFFD in their place, as a browser shows it, when
they are at most MAX_REPLACED_FRACTION of its characters.
"""
import codecs
import re

SUPERSETS = {
    "gb2312": ("gb18030",), "gbk": ("gb18030",), "gb18030": ("gb18030",),
    "big5": ("cp950", "big5hkscs"), "cp950": ("cp950", "big5hkscs"), "big5hkscs": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932",), "cp932": ("cp932",), "euc_kr": ("cp949",), "cp949": ("cp949",),
}
ALIASES = {  # labels Python's codecs do not know (WHATWG names)
    "x-gbk": "gbk", "chinese": "gbk", "csgb2312": "gb2312", "gb_2312-80": "gb2312", "iso-ir-58": "gb2312",
    "x-x-big5": "big5", "cn-big5": "big5", "csbig5": "big5", "big5-hkscs": "big5hkscs",
    "x-sjis": "shift_jis", "windows-31j": "cp932", "ms932": "cp932", "ms_kanji": "shift_jis",
    "x-euc-kr": "euc_kr", "windows-949": "cp949",
}
META_CHARSET = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]{2,40})""", re.IGNORECASE)
META_SCAN_BYTES = 4096
MAX_REPLACED_FRACTION = 0.001


def canonical(label: str | None) -> str | None:
    """The Python codec name for a charset label, or None when it names none."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def meta_charset(content: bytes) -> str | None:
    match = META_CHARSET.search(content[:META_SCAN_BYTES])
    return match.group(1).decode("ascii", "replace") if match else None


def decoders_for(label: str | None) -> tuple[str, ...]:
    name = canonical(label)
    if name is None:
        return ()
    return SUPERSETS.get(name, (name,))


def decode_page(content: bytes, declared: str | None, detect) -> tuple[str | None, str | None]:
    """(text, charset used) or (None, what was tried). `declared`: the charset the server (or, without one, the
    page's <meta>) names; `detect(content)` guesses one (cchardet) when nothing else decodes."""
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = declared or meta_charset(content)
    candidates = list(decoders_for(declared))
    guessed = None
    for codec in candidates:
        try:
            return content.decode(codec), codec
        except UnicodeDecodeError:
            continue
    guessed = detect(content)
    for codec in decoders_for(guessed):
        if codec in candidates:
            continue
        candidates.append(codec)
        try:
            return content.decode(codec), codec
        except UnicodeDecodeError:
            continue
    for codec in candidates:  # a few bytes no codec accepts: U+FFFD in their place, as a browser shows them
        text = content.decode(codec, errors="replace")
        if text.count("\ufffd") <= MAX_REPLACED_FRACTION * len(text):
            return text, codec
    return None, declared or guessed
