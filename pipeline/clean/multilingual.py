"""Judging each document by its own language: FineWeb-2's per-language filters inside one recipe step.

A recipe step marked `per_language: fineweb2` (configs/recipes/fineweb2.yaml) becomes, for the quality filters,
one datatrove filter per language (`PerLanguageFilter`): a document the language filter labelled `zh` goes to a
GopherRepetitionFilter / FineWebQualityFilter / GopherQualityFilter built with FineWeb-2's parameters and the
values of configs/fineweb2/cmn_Hani.yml, splitting words with the `cmn_Hani` tokenizer (jieba); a document in one
of the step's `applies_to` languages without such a file (English) goes to the same datatrove class built with the
step's own `params` (FineWeb's English values); any other document passes, counted as "passed (other language)".
The decisions are datatrove's, made by datatrove's classes; only the choice of instance is ours.

On the language filter the mark gives each language its own lid.176 minimum (`min_language_score` of its file);
on a text step (ftfy, symbol_lines) it limits the step to the FineWeb-2 languages, as FineWeb-2 runs them and
FineWeb's English recipe does not.
"""
from collections import Counter

from datatrove.data import Document
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import split_into_words

from pipeline.clean.steps import GuardedFilter

PER_LANGUAGE_VALUES = "fineweb2"
PER_LANGUAGE_STEPS = ("language_filter", "gopher_repetition", "fineweb_quality", "gopher_quality", "ftfy",
                      "symbol_lines", "pii", "opencc")
FILTER_CLASSES = {"gopher_repetition": GopherRepetitionFilter, "fineweb_quality": FineWebQualityFilter,
                  "gopher_quality": GopherQualityFilter}  # datatrove's; gopher_repetition judges with the faster twin


class PerLanguageFilter(BaseFilter):
    """One datatrove filter per language label; a document is judged by the filter of `metadata.language`.
    (Used with the GuardedFilter mixin, which adds the crash guard, token and per-language counts.)"""

    def __init__(self, judges: dict[str, BaseFilter], exclusion_writer=None, **kwargs):
        super().__init__(exclusion_writer=exclusion_writer, **kwargs)
        self.judges = dict(judges)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        judge = self.judges.get(doc.metadata.get("language"))
        if judge is None:
            self.stat_update("passed_other_language")
            return True
        return judge.filter(doc)


class PerLanguageGopherRepetition(GuardedFilter, PerLanguageFilter):
    name = f"{GopherRepetitionFilter.name} (per language)"


class PerLanguageFineWebQuality(GuardedFilter, PerLanguageFilter):
    name = f"{FineWebQualityFilter.name} (per language)"


class PerLanguageGopherQuality(GuardedFilter, PerLanguageFilter):
    name = f"{GopherQualityFilter.name} (per language)"


PER_LANGUAGE_CLASSES = {"gopher_repetition": PerLanguageGopherRepetition,
                        "fineweb_quality": PerLanguageFineWebQuality, "gopher_quality": PerLanguageGopherQuality}


def judged_languages(registry: dict, languages: list[str] | None) -> list[str]:
    """The labels with a configs/fineweb2 file that this run keeps (all of them with --languages all)."""
    return sorted(label for label in registry if languages is None or label in languages)


def per_language_judges(step_name: str, params: dict, applies_to: tuple[str, ...], registry: dict,
                        languages: list[str] | None, word_split) -> dict[str, BaseFilter]:
    """{label: datatrove filter} for a quality step: FineWeb-2's values for the languages with a file, the step's
    `params` for its `applies_to` languages without one. `word_split(code)` gives the word tokenizer (or code)."""
    cls = FastGopherRepetition if step_name == "gopher_repetition" else FILTER_CLASSES[step_name]
    judges = {}
    for label in judged_languages(registry, languages):
        values = registry[label]
        judges[label] = cls(**getattr(values, step_name)(), language=word_split(values.code))
    for label in applies_to:
        if label not in judges and (languages is None or label in languages):
            judges[label] = cls(**params, language=word_split(label))
    return judges


__all__ = ["PerLanguageFilter", "PER_LANGUAGE_CLASSES", "per_language_judges", "judged_languages", "PER_LANGUAGE_STEPS",
           "PER_LANGUAGE_VALUES", "FILTER_CLASSES"]


class FastGopherRepetition(GopherRepetitionFilter):
    """datatrove's GopherRepetitionFilter with the same rules and the same answers, its n-grams built faster.

    For Chinese, after the shared word split, this filter's own n-gram counting is most of the chain's time
    (a page of 3,000 characters is ~2,000 words, joined into n-grams for n = 2..10). datatrove builds each n-gram
    with a slice and a join in a Python loop; here `zip` over shifted views of the words and `map(join)` build the
    same strings in C. The order of first occurrence (which `Counter.most_common` keeps for ties), the skip after a
    repeated n-gram and the characters counted are datatrove's; tests/test_fineweb2.py checks every decision
    against datatrove's own class on real pages.
    """

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"
        words = split_into_words(text, self.language)
        for n, n_frac in self.top_n_grams:
            if len(words) < n:
                continue
            top_n_gram, count = Counter(_n_grams(words, n, " ")).most_common(1)[0]
            if len(top_n_gram) * count / len(text) > n_frac:
                return False, f"top_{n}_gram"
        for n, n_frac in self.dup_n_grams:
            if repeated_n_gram_chars(words, n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


def _n_grams(words: list[str], n: int, separator: str):
    """The n-grams of `words` as strings, in order: datatrove's `separator.join(words[i:i + n])` for every i."""
    return map(separator.join, zip(*(words[i:] for i in range(n))))


def repeated_n_gram_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate: characters of the n-grams (joined without a separator) seen before, walking
    on by n words after each repeat and by one otherwise. Up to the first repeat every n-gram is only added to the
    seen set, so that stretch is found with C-level comparisons and the walk starts there (none: 0)."""
    grams = list(_n_grams(words, n, ""))
    firsts = list(dict.fromkeys(grams))  # each distinct n-gram, in order of first occurrence
    if len(firsts) == len(grams):
        return 0
    low, high = 0, len(firsts)  # the longest prefix of grams without a repeat: grams[:k] == firsts[:k]
    while low < high:
        middle = (low + high + 1) // 2
        if grams[:middle] == firsts[:middle]:
            low = middle
        else:
            high = middle - 1
    seen, repeated, index = set(grams[:low]), 0, low
    while index < len(grams):
        gram = grams[index]
        if gram in seen:
            repeated += len(gram)
            index += n
        else:
            seen.add(gram)
            index += 1
    return repeated
