"""`--languages` checked against what the language-ID model can answer, before any work.

The language filter keeps a document when lid.176 (pipeline/clean/langid.py) labels it with one of the codes given.
A code the model never outputs (`eng`, `fra`, a typo) used to be accepted and kept nothing, which showed only at the
end as an empty corpus. The model's own labels are the list of valid codes: read from the model file (0.1 s), so a
model with other labels brings its own list. The suggestion for a wrong code: its two-letter code when it is an ISO
639-2/639-3 code (what most people type by mistake), the code without region or case (`en-US`, `EN`), then the
labels that look closest.
"""
import difflib
from functools import lru_cache

from pipeline.clean.langid import lid176_path

# ISO 639-2 (B and T) and 639-3 codes -> the ISO 639-1 code lid.176 uses for the same language; for suggestions only.
_THREE_LETTER = dict(pair.split(":") for pair in """
afr:af amh:am arg:an ara:ar asm:as ava:av aze:az bak:ba bel:be bul:bg bih:bh ben:bn bod:bo tib:bo bre:br bos:bs
cat:ca che:ce cos:co ces:cs cze:cs chv:cv cym:cy wel:cy dan:da deu:de ger:de div:dv ell:el gre:el eng:en epo:eo
spa:es est:et eus:eu baq:eu fas:fa per:fa fin:fi fra:fr fre:fr fry:fy gle:ga gla:gd glg:gl grn:gn guj:gu glv:gv
heb:he hin:hi hrv:hr hat:ht hun:hu hye:hy arm:hy ina:ia ind:id ile:ie ido:io isl:is ice:is ita:it jpn:ja jav:jv
kat:ka geo:ka kaz:kk khm:km kan:kn kor:ko kur:ku kom:kv cor:kw kir:ky lat:la ltz:lb lim:li lao:lo lit:lt lav:lv
mlg:mg mkd:mk mac:mk mal:ml mon:mn mar:mr msa:ms may:ms mlt:mt mya:my bur:my nep:ne nld:nl dut:nl nno:nn nor:no
oci:oc ori:or oss:os pan:pa pol:pl pus:ps por:pt que:qu roh:rm ron:ro rum:ro rus:ru san:sa srd:sc snd:sd hbs:sh
sin:si slk:sk slo:sk slv:sl som:so sqi:sq alb:sq srp:sr sun:su swe:sv swa:sw tam:ta tel:te tgk:tg tha:th tuk:tk
tgl:tl tur:tr tat:tt uig:ug ukr:uk urd:ur uzb:uz vie:vi vol:vo wln:wa yid:yi yor:yo zho:zh chi:zh cmn:zh
""".split())


@lru_cache(maxsize=1)
def lid176_labels() -> frozenset[str]:
    """The language codes lid.176 outputs (its labels without `__label__`), read from the offline model file."""
    from fasttext.FastText import _FastText

    return frozenset(label.removeprefix("__label__") for label in _FastText(str(lid176_path())).get_labels())


def closest_labels(code: str, labels: frozenset[str], n: int = 3) -> list[str]:
    """Up to `n` valid codes a person who typed `code` most likely meant, best first."""
    base = code.lower().replace("-", "_").split("_")[0]
    guesses = [guess for guess in (base, _THREE_LETTER.get(base)) if guess in labels]
    guesses += difflib.get_close_matches(base, sorted(labels), n=n, cutoff=0.5)
    return list(dict.fromkeys(guesses))[:n]


def unknown_language(codes: list[str]) -> tuple[str, list[str]] | None:
    """(the first code lid.176 never outputs, the closest valid codes), or None when every code is valid."""
    labels = lid176_labels()
    for code in codes:
        if code not in labels:
            return code, closest_labels(code, labels)
    return None
