"""The cleaning steps: datatrove's FineWeb steps, made to lose nothing, plus their registry for recipes.

Each step is datatrove's own class (same parameters, same decisions) with three additions:
  * a document that makes a step raise (a parser error, an extraction timeout) is dropped with the reason
    `error_<Type>`, written with the message to the step's exclusion folder, and the run goes on;
  * a step given `applies_to: [en]` in the recipe judges only documents of those languages and passes the others
    (FineWeb's Gopher/C4/FineWeb heuristics and stop words are English ones);
  * documents carry `token_count` (tiktoken, the --tokenizer) so the report can show tokens in/out per step.
"""
import contextlib
import inspect
import json
from abc import abstractmethod
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, URLFilter)
from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter, SymbolLinesFormatter
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.typeshelper import StatHints

from gptstack.errors import GPTStackError
from gptstack.files import atomic_write
from pipeline.clean.decontam import Settings as DecontamSettings
from pipeline.clean.decontam_index import cached_index, load_index
from pipeline.clean.extraction import CpuBudgetExceeded, CpuBudgetSandbox, wall_backstop
from pipeline.clean.gate import LanguageGate
from pipeline.clean.langid import OfflineLanguageFilter
from pipeline.clean.resiliparse_extract import resiliparse_text
from pipeline.tokenizer.tokenizer import Tokenizer


class TokenCounter:
    """Counts tokens of the run's tokenizer (its encoding is built in each worker process, on first use)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text))


def error_reason(error: Exception) -> str:
    return f"error_{type(error).__name__}"


def error_message(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


class GuardedFilter:
    """Mixin for a datatrove filter: crash -> kept aside, `applies_to` languages, token counts kept up to date."""

    def __init__(self, applies_to: tuple[str, ...] = (), count_tokens: TokenCounter | None = None, **kwargs):
        super().__init__(**kwargs)
        self.applies_to, self.count_tokens = tuple(applies_to), count_tokens

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.guarded_filter(doc) for doc in batch]

    def guarded_filter(self, doc: Document) -> bool | tuple[bool, str]:
        tokens_before = doc.metadata.get("token_count", 0)
        if self.applies_to and doc.metadata.get("language") not in self.applies_to:
            self.stat_update("passed_other_language")
            count_by_language(self, doc, tokens_before, None)
            return True
        text_before = doc.text
        try:
            result = self.filter(doc)
        except Exception as error:  # noqa: BLE001 - any crash on one document must not stop the run
            doc.metadata["error"] = error_message(error)
            result = False, error_reason(error)
        if self.count_tokens and doc.text is not text_before and doc.text != text_before:  # C4 removed lines
            doc.metadata["token_count"] = self.count_tokens(doc.text)
        kept = result if isinstance(result, bool) else result[0]
        count_by_language(self, doc, tokens_before, None if kept else (result[1] if isinstance(result, tuple)
                                                                       else "unnamed"))
        return result


BY_LANGUAGE = "by_language/"  # stats key prefix: by_language/<lang>/{docs_in,tokens_in,docs_out,tokens_out,dropped/...}


def count_by_language(step: PipelineStep, doc: Document, tokens_before: int, dropped_reason: str | None) -> None:
    """Per-language stats of one document through `step` (from the language filter on, where the language is
    known), for the report's per-language tables."""
    language = doc.metadata.get("language")
    if language is None:
        return
    prefix = f"{BY_LANGUAGE}{language}/"
    step.stat_update(prefix + "docs_in")
    step.stat_update(prefix + "tokens_in", value=int(tokens_before or 0))
    if dropped_reason is None:
        step.stat_update(prefix + "docs_out")
        step.stat_update(prefix + "tokens_out", value=int(doc.metadata.get("token_count", 0) or 0))
    else:
        step.stat_update(f"{prefix}dropped/{dropped_reason}")


class Unusable(Exception):
    """Raised by `GuardedTransform.new_text` for a document it has nothing to make of (not a failure)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class GuardedTransform:
    """Mixin for a step that rewrites each document's text; `new_text` is the subclass's one job.

    This class runs it on every document with datatrove's stats and timing; a document it cannot use (`Unusable`)
    or that makes it raise (reason `error_<Type>`, the message in `metadata.error`) goes to `exclusion_writer` with
    `metadata.filter_reason`, and the run goes on. `token_count` is set when the text changes (or on every
    document, for steps whose output has no count yet).
    """

    counts_every_document = False

    def __init__(self, exclusion_writer: JsonlWriter | None = None, count_tokens: TokenCounter | None = None,
                 applies_to: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.exclusion_writer, self.count_tokens = exclusion_writer, count_tokens
        self.applies_to = tuple(applies_to)  # languages whose documents it rewrites; () = all

    def session(self):
        """What `new_text` needs open for a whole task (e.g. a sandbox process); passed to it as `session`."""
        return contextlib.nullcontext()

    @abstractmethod
    def new_text(self, doc: Document, session) -> str:
        """The document's text after this step's one job (each subclass says what that is)."""

    def failure(self, error: Exception) -> tuple[str, str]:
        """(reason, message) for a document `new_text` raised on."""
        return error_reason(error), error_message(error)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.session() as session, (self.exclusion_writer or _NoWriter()) as writer:
            for doc in data:
                self.stat_update(StatHints.total)
                tokens_before = doc.metadata.get("token_count", 0)
                if self.applies_to and doc.metadata.get("language") not in self.applies_to:
                    self.stat_update("passed_other_language")
                    count_by_language(self, doc, tokens_before, None)
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                with self.track_time():
                    try:
                        text, reason = self.new_text(doc, session), None
                    except Unusable as unusable:
                        reason = unusable.reason
                    except Exception as error:  # noqa: BLE001 - any crash on one document must not stop the run
                        reason, doc.metadata["error"] = self.failure(error)
                if reason:
                    self.stat_update(StatHints.dropped, f"dropped_{reason}")
                    doc.metadata["filter_reason"] = reason
                    count_by_language(self, doc, tokens_before, reason)
                    writer.write(doc, rank)
                    continue
                changed = text != doc.text
                if changed:
                    self.stat_update("documents_changed")
                    doc.text = text
                if self.count_tokens and (changed or self.counts_every_document):
                    doc.metadata["token_count"] = self.count_tokens(text)
                count_by_language(self, doc, tokens_before, None)
                self.stat_update(StatHints.forwarded)
                self.update_doc_stats(doc)
                yield doc


class CleanURLFilter(GuardedFilter, URLFilter):
    """datatrove's URL filter with its integrated block lists; the public-suffix list is the one bundled with
    tldextract (no download, same answer on every machine); a document without a URL passes (text inputs)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from tldextract import TLDExtract

        self.tldextractor = TLDExtract(suffix_list_urls=())

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not doc.metadata.get("url"):
            self.stat_update("no_url")
            return True
        return super().filter(doc)


class CleanLanguageFilter(GuardedFilter, OfflineLanguageFilter):
    pass


class CleanGopherRepetition(GuardedFilter, GopherRepetitionFilter):
    pass


class CleanGopherQuality(GuardedFilter, GopherQualityFilter):
    pass


class CleanC4Quality(GuardedFilter, C4QualityFilter):
    pass


class CleanFineWebQuality(GuardedFilter, FineWebQualityFilter):
    pass


class CleanTrafilatura(GuardedTransform, Trafilatura):
    """datatrove's Trafilatura extraction in its sandbox process that keeps aside what it cannot use: a timeout, a
    crash or a page with no main text goes to the exclusion folder with its reason. `timeout` counts CPU seconds of
    the sandbox, not wall-clock time, so a busy machine keeps the same pages (pipeline/clean/extraction.py)."""

    counts_every_document = True  # HTML in, text out: no document has a count yet

    def session(self):
        return CpuBudgetSandbox(cpu_seconds=self.timeout, warmup_text="")

    def new_text(self, doc: Document, session) -> str:
        text = session.process_document(doc.text, self.extract)
        if not (text and text.strip()):
            raise Unusable("no_main_text")
        return text

    def failure(self, error: Exception) -> tuple[str, str]:
        if isinstance(error, CpuBudgetExceeded):
            return "error_timeout", f"extraction needed over {self.timeout}s of CPU time"
        if isinstance(error, TimeoutError):  # the wall-clock backstop: stuck where no signal is handled
            return "error_timeout", f"extraction did not answer within {wall_backstop(self.timeout):.0f}s"
        if isinstance(error, EOFError):  # the sandbox process died (e.g. out of memory); a new one starts
            return "error_process_died", error_message(error)
        return super().failure(error)


class CleanResiliparse(GuardedTransform, PipelineStep):
    """Resiliparse's main-text extraction, DCLM's call (`--extractor resiliparse`; resiliparse_extract.py); a page
    with no main text is kept aside like Trafilatura's."""

    name, type, counts_every_document = "⛏ Resiliparse", "🛢 - EXTRAC", True

    def __init__(self, main_content: bool = True, alt_texts: bool = True, list_bullets: bool = True,
                 links: bool = False, preserve_formatting: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.options = dict(main_content=main_content, alt_texts=alt_texts, list_bullets=list_bullets, links=links,
                            preserve_formatting=preserve_formatting)

    def new_text(self, doc: Document, session) -> str:
        text = resiliparse_text(doc.text, **self.options)
        if not (text and text.strip()):
            raise Unusable("no_main_text")
        return text


class CleanPII(GuardedTransform, PIIFormatter):
    """datatrove's PII formatter (emails and public IPs replaced); a crash keeps the document aside."""

    def new_text(self, doc: Document, session) -> str:
        return self.format(doc.text)


class CleanFTFY(GuardedTransform, FTFYFormatter):
    """datatrove's FTFY formatter (mojibake and broken encodings repaired), as FineWeb-2 runs it after filtering."""

    def new_text(self, doc: Document, session) -> str:
        return self.format(doc.text)


class CleanSymbolLines(GuardedTransform, SymbolLinesFormatter):
    """datatrove's SymbolLinesFormatter: FineWeb-2 gives it `symbols_to_remove: ["|"]`, `replace_char: "\\n"` to
    remove the lines of `|` that Trafilatura leaves where tables were."""

    def new_text(self, doc: Document, session) -> str:
        return self.format(doc.text)


class OpenCCConvert(GuardedTransform, PipelineStep):
    """Converts Chinese text between scripts with OpenCC (`config`: t2s traditional -> simplified, s2t, s2tw,
    tw2s, s2hk, hk2s, t2tw, s2twp, tw2sp; phrases as well as characters). Off in the fineweb2 recipe: FineWeb-2
    keeps both scripts, and so does this project unless asked."""

    name = "🈶 OpenCC"
    type = "✂️ - FORMAT"

    def __init__(self, config: str = "t2s", **kwargs):
        super().__init__(**kwargs)
        from opencc import OpenCC

        self.config = config
        try:
            OpenCC(config)
        except Exception as error:  # noqa: BLE001 - opencc raises bare errors for an unknown config
            raise ValueError(f"OpenCC has no conversion {config!r} (t2s, s2t, s2tw, tw2s, s2hk, hk2s, t2tw, "
                             f"s2twp, tw2sp)") from error
        self._converter = None

    def __getstate__(self):
        return {**self.__dict__, "_converter": None}

    def new_text(self, doc: Document, session) -> str:
        if self._converter is None:
            from opencc import OpenCC

            self._converter = OpenCC(self.config)
        return self._converter.convert(doc.text)


class Decontaminate(GuardedFilter, BaseFilter):
    """Drops a document that shares an n-gram with an example of the evaluation suite (pipeline/clean/decontam.py:
    word 13-grams, CJK character n-grams), with the reason `contaminated_<task>` and `metadata.contamination`:
    the task, the example's index, the first shared n-gram and how many it shares. The index is built once per
    suite and settings, cached on disk and memory-mapped by every worker (decontam_index.py)."""

    name = "🧪 Decontaminate"

    def __init__(self, suite: str = "core", n: int = 13, min_n: int = 8, cjk_n: int = 25, cjk_min_n: int = 15,
                 max_examples: int = 10, min_matches: int = 1, cache_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        settings = DecontamSettings(n, min_n, cjk_n, cjk_min_n, max_examples)
        if not 1 <= min_n <= n or not 1 <= cjk_min_n <= cjk_n or min_matches < 1 or max_examples < 1:
            raise ValueError(f"need 1 <= min_n <= n, 1 <= cjk_min_n <= cjk_n, min_matches >= 1 and "
                             f"max_examples >= 1, got {settings} min_matches={min_matches}")
        try:
            self.index_folder = str(cached_index(str(suite), settings, cache_dir))  # built here, once, if new
        except GPTStackError as error:
            raise ValueError(f"suite {suite!r}: {error}") from None
        self.min_matches, self._index, self._build = min_matches, None, (str(suite), settings, cache_dir)

    def __getstate__(self):  # workers map the index files themselves
        return {**self.__dict__, "_index": None}

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._index is None:
            if not Path(self.index_folder, "index.json").is_file():  # a worker on another machine (Slurm, Ray)
                self.index_folder = str(cached_index(*self._build))
            self._index = load_index(self.index_folder)
        match = self._index.match(doc.text)
        if match is None or match.ngrams < self.min_matches:
            return True
        doc.metadata["contamination"] = {"task": match.task, "example": match.index, "ngram": match.ngram,
                                         "ngrams": match.ngrams}
        return False, f"contaminated_{match.task}"


class CountTokens(GuardedTransform, PipelineStep):
    """Sets `token_count` on documents that arrive as text (jsonl/parquet inputs), for the report."""

    name = "🔢 Count tokens"
    type = "🔢 - COUNTER"
    counts_every_document = True

    def __init__(self, count_tokens: TokenCounter):
        super().__init__(count_tokens=count_tokens)

    def new_text(self, doc: Document, session) -> str:
        return doc.text


class KeptExamples(PipelineStep):
    """Passes every document on and keeps the first `per_task` of each task in `folder/<rank>.jsonl` (report)."""

    name = "🔎 Kept examples"
    type = "🔢 - COUNTER"

    def __init__(self, folder: str, per_task: int = 5):
        super().__init__()
        self.folder, self.per_task = folder, per_task

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        examples, per_language = [], {}
        for doc in data:
            language = doc.metadata.get("language")
            if per_language.get(language, 0) < self.per_task:  # (per language: the report shows each one's)
                per_language[language] = per_language.get(language, 0) + 1
                examples.append({"id": doc.id, "url": doc.metadata.get("url"),
                                 "language": doc.metadata.get("language"), "text": doc.text[:2000]})
            yield doc
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(self.folder) / f"{rank:05d}.jsonl",
                     "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))


class _NoWriter:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, doc, rank):
        pass


# The recipe's step names -> the classes that run them.
STEP_CLASSES: dict[str, type] = {
    "url_filter": CleanURLFilter,
    "language_gate": LanguageGate,
    "trafilatura": CleanTrafilatura,
    "resiliparse": CleanResiliparse,
    "language_filter": CleanLanguageFilter,
    "gopher_repetition": CleanGopherRepetition,
    "gopher_quality": CleanGopherQuality,
    "c4_quality": CleanC4Quality,
    "fineweb_quality": CleanFineWebQuality,
    "pii": CleanPII,
    "ftfy": CleanFTFY,
    "symbol_lines": CleanSymbolLines,
    "opencc": OpenCCConvert,
    "decontaminate": Decontaminate,
}
# Parameters the pipeline sets itself (not the recipe's `params`): where dropped documents go, the language(s) to
# keep or judge, the token counter.
RESERVED_PARAMS = ("exclusion_writer", "languages", "count_tokens", "language", "applies_to",
                   "language_thresholds")


def step_parameters(step: str) -> set[str]:
    """The keyword parameters a recipe may give `step` (those of datatrove's class and its bases)."""
    names = set()
    for cls in STEP_CLASSES[step].__mro__:
        if "__init__" in cls.__dict__:
            names |= {p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
    return names - set(RESERVED_PARAMS)

