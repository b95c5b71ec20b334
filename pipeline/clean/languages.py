"""FineWeb-2's per-language values (configs/fineweb2/<lang_Script>.yml), keyed by the lid.176 label.

Each file holds FineWeb-2's published thresholds and stop words for one language-script code, plus two keys of ours:
`lid176_label` (what fastText lid.176 calls the language) and `min_language_score` (the lid.176 score a document
needs). A file dropped in unchanged from huggingface/fineweb-2 works: its label is derived from its code and its
minimum is DEFAULT_MIN_LANGUAGE_SCORE. The file's code is also the word tokenizer (datatrove's, by language-script
code: the two-letter codes of datatrove 0.10.1 are wrong for zh, ar, hi and others).
"""
import csv
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import configs
from gptstack.errors import GPTStackError

FINEWEB2_DIR = configs.path("fineweb2")  # packaged with the code (configs/__init__.py)
DEFAULT_MIN_LANGUAGE_SCORE = 0.65  # FineWeb's lid.176 threshold; see configs/fineweb2/README.md
FINEWEB2_KEYS = {"language_score", "dup_line_frac", "top_n_grams", "dup_n_grams", "line_punct_thr", "new_line_ratio",
                 "min_avg_word_length", "max_avg_word_length", "max_non_alpha_words_ratio", "stopwords"}
OUR_KEYS = {"lid176_label", "min_language_score"}
# Scripts written without spaces whose sentences often end inside quotes or brackets: 他说：“走吧。” / 「好！」
UNSPACED_SCRIPTS = ("Hani", "Hans", "Hant", "Jpan", "Kore", "Hang")
CLOSING_MARKS = "”’」』）》〉】〕\"')"


def line_end_punctuation(code: str) -> tuple[str, ...] | None:
    """What counts as a line ending in punctuation for FineWeb quality's `line_punct_thr` rule (its `stop_chars`):
    None (datatrove's TERMINAL_PUNCTUATION, which has 。！？ already) except for Chinese, Japanese and Korean, where a
    terminal mark followed by a closing quote or bracket (。” ！」 ？） ...) ends a sentence too. The one place where
    the fineweb2 recipe adds to FineWeb-2's published rules (configs/fineweb2/README.md)."""
    if code.split("_")[-1] not in UNSPACED_SCRIPTS:
        return None
    from datatrove.utils.text import TERMINAL_PUNCTUATION

    terminal = tuple(TERMINAL_PUNCTUATION)
    return terminal + tuple(mark + closer for mark in "。！？｡．!?.…" for closer in CLOSING_MARKS)


class LanguageConfigError(GPTStackError):
    """A per-language file that is missing, malformed or clashes with another."""


@dataclass(frozen=True)
class LanguageValues:
    code: str                 # FineWeb-2's language-script code, e.g. cmn_Hani: also datatrove's tokenizer key
    label: str                # lid.176 label, e.g. zh
    min_language_score: float
    values: dict = field(hash=False)  # FineWeb-2's keys, as published
    path: str = ""

    def gopher_repetition(self) -> dict:
        v = self.values
        return {"dup_para_frac": 0, "dup_line_char_frac": 0, "dup_para_char_frac": 0,
                "dup_line_frac": v["dup_line_frac"], "top_n_grams": _pairs(v["top_n_grams"]),
                "dup_n_grams": _pairs(v["dup_n_grams"])}

    def fineweb_quality(self) -> dict:
        v = self.values
        values = {"short_line_thr": 999, "char_duplicates_ratio": 0.1, "line_punct_thr": v["line_punct_thr"],
                  "new_line_ratio": v["new_line_ratio"]}
        stop_chars = line_end_punctuation(self.code)
        return values if stop_chars is None else {**values, "stop_chars": stop_chars}

    def gopher_quality(self) -> dict:
        v = self.values
        return {"min_avg_word_length": v["min_avg_word_length"], "max_avg_word_length": v["max_avg_word_length"],
                "stop_words": list(v["stopwords"]), "max_non_alpha_words_ratio": v["max_non_alpha_words_ratio"],
                "min_stop_words": 2}


def _pairs(value) -> tuple:
    return tuple(tuple(pair) for pair in value)


@lru_cache(maxsize=1)
def lid176_labels() -> frozenset[str]:
    from fasttext.FastText import _FastText

    from pipeline.clean.langid import lid176_path

    return frozenset(label.removeprefix("__label__") for label in _FastText(str(lid176_path())).get_labels())


@lru_cache(maxsize=1)
def _iso_639_1() -> dict[str, str]:
    """ISO 639-3 -> 639-1 from datatrove's tokenizer table (the column is right; only its flag columns mislead)."""
    from datatrove.utils._import_utils import ASSETS_PATH

    with open(os.path.join(ASSETS_PATH, "tokenizer_assignment.csv"), encoding="utf-8") as f:
        return {row["code_3"]: row["code_1"] for row in csv.DictReader(f) if row["code_1"]}


def derived_label(code: str) -> str | None:
    iso3 = code.split("_")[0]
    labels = lid176_labels()
    if iso3 in labels:
        return iso3
    iso1 = _iso_639_1().get(iso3)
    return iso1 if iso1 in labels else None


def read_language_file(path: Path) -> LanguageValues:
    code = path.stem
    data = configs.read_mapping(path, LanguageConfigError, "FineWeb-2's mapping of thresholds and stopwords")
    missing = (FINEWEB2_KEYS - {"language_score"}) - set(data)
    if missing:
        raise LanguageConfigError(f"{path}: missing FineWeb-2 key(s) {sorted(missing)}")
    unknown = set(data) - FINEWEB2_KEYS - OUR_KEYS
    if unknown:
        raise LanguageConfigError(f"{path}: unknown key(s) {sorted(unknown)} (allowed: {sorted(FINEWEB2_KEYS | OUR_KEYS)})")
    label = data.get("lid176_label") or derived_label(code)
    if not label or label not in lid176_labels():
        raise LanguageConfigError(f"{path}: fastText lid.176 has no label for {code}"
                                  + (f" ({label!r} is not one of its 176)" if label else "")
                                  + "; set `lid176_label:` to the label lid.176 gives this language")
    score = data.get("min_language_score", DEFAULT_MIN_LANGUAGE_SCORE)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 1:
        raise LanguageConfigError(f"{path}: min_language_score must be a number from 0 to 1, got {score!r}")
    return LanguageValues(code=code, label=label, min_language_score=float(score),
                          values={k: data[k] for k in FINEWEB2_KEYS if k in data}, path=str(path))


def load_languages(folder: Path = FINEWEB2_DIR) -> dict[str, LanguageValues]:
    """{lid.176 label: values} for every *.yml in `folder`; two files claiming one label is an error."""
    by_label: dict[str, LanguageValues] = {}
    for path in sorted(Path(folder).glob("*.yml")):
        values = read_language_file(path)
        if values.label in by_label:
            raise LanguageConfigError(f"{path} and {by_label[values.label].path} both judge lid.176 label "
                                      f"{values.label!r}; set `lid176_label:` in one of them or remove one")
        by_label[values.label] = values
    return by_label


# What datatrove's word tokenizers import, by (tokenizer class, its argument): checked before any document is read,
# so a missing package is one message naming the language and the package, not a failure on every document.
TOKENIZER_PACKAGES = {("SpaCyTokenizer", "zh"): ["jieba"], ("SpaCyTokenizer", "ja"): ["sudachipy", "sudachidict_core"],
                      ("SpaCyTokenizer", "vi"): ["pyvi"], ("KiwiTokenizer", ""): ["kiwipiepy", "kiwipiepy_model"],
                      ("ThaiTokenizer", ""): ["pythainlp"], ("KhmerTokenizer", ""): ["khmernltk"],
                      ("LaoTokenizer", ""): ["laonlp"], ("TibetanTokenizer", ""): ["botok"],
                      ("BurmeseTokenizer", ""): ["pyidaungsu"]}
# pyproject.toml's `multilingual` extra, which pins kiwipiepy below 0.22 (later ones lack the model datatrove loads)
MULTILINGUAL_EXTRA = {"kiwipiepy", "kiwipiepy_model", "pyvi"}
TOKENIZER_CLASS_PACKAGES = {"SpaCyTokenizer": ["spacy"], "StanzaTokenizer": ["stanza"],
                            "IndicNLPTokenizer": ["indicnlp"]}


def check_word_tokenizer(code: str) -> None:
    """LanguageConfigError when datatrove has no word tokenizer for `code` or a package it needs is missing."""
    import importlib.util

    from datatrove.utils.word_tokenizers import load_tokenizer_assignments

    factory = load_tokenizer_assignments().get(code)
    if factory is None:
        raise LanguageConfigError(f"datatrove has no word tokenizer for {code!r} (use a language-script code such "
                                  "as cmn_Hani, or an ISO 639-1 code such as en)")
    class_name, argument = factory.args[0], factory.args[1] or ""
    needed = TOKENIZER_CLASS_PACKAGES.get(class_name, []) + TOKENIZER_PACKAGES.get((class_name, argument), [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        install = f"pip install {' '.join(m.replace('_', '-') for m in missing)}"
        if set(missing) <= MULTILINGUAL_EXTRA:
            install = "pip install -e '.[multilingual]' (the versions datatrove works with)"
        raise LanguageConfigError(f"the word tokenizer for {code} ({' '.join(filter(None, (class_name, argument)))}) "
                                  f"needs {', '.join(missing)}: {install}")
