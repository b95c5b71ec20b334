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
from datatrove.data import Document
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import BaseFilter

from pipeline.clean.steps import GuardedFilter

PER_LANGUAGE_VALUES = "fineweb2"
PER_LANGUAGE_STEPS = ("language_filter", "gopher_repetition", "fineweb_quality", "gopher_quality", "ftfy",
                      "symbol_lines", "pii", "opencc")
FILTER_CLASSES = {"gopher_repetition": GopherRepetitionFilter, "fineweb_quality": FineWebQualityFilter,
                  "gopher_quality": GopherQualityFilter}


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
    cls = FILTER_CLASSES[step_name]
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
