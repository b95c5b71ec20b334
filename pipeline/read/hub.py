"""The cleaned corpora on the Hugging Face Hub, by name: where each repository keeps its files and which subsets it has.

`--corpus NAME --subset S` streams `hf://datasets/<repo>/<folder of S>/...`; `--hub-mirror DIR` reads the same
files from DIR, a folder laid out like the repository (what `huggingface-cli download <repo> --repo-type dataset
--include '<folder>/*' --local-dir DIR` writes). Every field of a record besides the text goes into the
document's metadata (FineWeb-2's `minhash_cluster_size`, the score columns), which is what `--rehydrate` reads.

Each layout below was read from the repository's own files; the source is named beside it:
  fineweb              HuggingFaceFW/fineweb        sample/10BT/*.parquet, data/CC-MAIN-2024-10/*.parquet
  fineweb-edu          HuggingFaceFW/fineweb-edu    the same layout
  fineweb-2            HuggingFaceFW/fineweb-2      data/<lang>_<Script>/{train,test}/*.parquet (e.g. data/cmn_Hani/
                       train/000_00000.parquet); columns text, id, dump, url, date, file_path, language,
                       language_score, language_script, minhash_cluster_size (int64), top_langs (the dataset card's
                       dataset_info, as copied by its derivatives, e.g. ReactiveAI/fineweb-2-pol-latest; the
                       rehydration weights in huggingface/fineweb-2's README.md). ODC-By.
  fineweb-edu-chinese  opencsg/Fineweb-Edu-Chinese-V2.1   one folder per score tier: 2_3/, 3_4/, 4_5/ of parquet
                       files (the repository's tree at commit 049070e); columns text, score (the classifier's
                       score scaled to 0..1), source (the upstream corpus; read as such by minifrontier's
                       pinned-source sampler). Apache-2.0, with the OpenCSG community license on the card.
  cci3-hq              BAAI/CCI3-HQ                 data/part_000000.jsonl ... part_000099.jsonl, one JSON object a
                       line {"id", "text", "score"} (the card's data format, and the layout other projects read).
                       Gated: accept its conditions on the Hub and set HF_TOKEN. Apache-2.0.
"""
import difflib
import os
import re
from dataclasses import dataclass
from typing import Callable

from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep

from gptstack.errors import InputError
from pipeline.read.readers import CheckedJsonlReader, CheckedParquetReader


@dataclass(frozen=True)
class HubCorpus:
    name: str
    repo: str
    description: str
    folder: Callable[[str | None], str]  # --subset (None: not given) -> the folder in the repository; InputError
    suffix: str  # the files read: .parquet or .jsonl
    listing: str = ""  # the folder whose subfolders are the subsets (named in a mistyped subset's error)


# ------------------------------------------------------------------------------------------------ FineWeb, FineWeb-Edu
FINEWEB_DEFAULT_SUBSET = "sample-10BT"


def fineweb_folder(subset: str | None) -> str:
    """FineWeb's repository layout: `sample-10BT` -> `sample/10BT`, `CC-MAIN-2024-10` -> `data/CC-MAIN-2024-10`."""
    subset = subset or FINEWEB_DEFAULT_SUBSET
    if match := re.fullmatch(r"sample-(\d+BT)", subset):
        return f"sample/{match.group(1)}"
    if re.fullmatch(r"CC-MAIN-\d{4}-\d{2}", subset):
        return f"data/{subset}"
    raise InputError(f"--subset {subset}: expected a sample such as sample-10BT or a dump such as CC-MAIN-2024-10")


# ------------------------------------------------------------------------------------------------ FineWeb-2
FINEWEB2_SUBSET = re.compile(r"(?P<config>[a-z]{3}_[A-Z][a-z]{3}(?:_removed)?)(?:/(?P<split>train|test))?")


def fineweb2_folder(subset: str | None) -> str:
    """`cmn_Hani` -> `data/cmn_Hani/train`; `cmn_Hani/test` -> its test split; `cmn_Hani_removed` -> what FineWeb-2's
    filters removed. A config is an ISO 639-3 language and an ISO 15924 script, as the repository names them."""
    if not subset:
        raise InputError("--corpus fineweb-2 needs --subset LANGUAGE_Script, e.g. cmn_Hani (Mandarin, Han script), "
                         "jpn_Jpan, kor_Hang, deu_Latn; add /test for its test split (cmn_Hani/test)")
    match = FINEWEB2_SUBSET.fullmatch(subset)
    if not match:
        raise InputError(f"--subset {subset}: a FineWeb-2 config is language_Script, e.g. cmn_Hani, jpn_Jpan, "
                         "rus_Cyrl (optionally /train or /test)")
    return f"data/{match.group('config')}/{match.group('split') or 'train'}"


# ------------------------------------------------------------------------------------------------ Fineweb-Edu-Chinese
FINEWEB_EDU_CHINESE_TIERS = ("2_3", "3_4", "4_5")  # the score tiers, one top-level folder each


def fineweb_edu_chinese_folder(subset: str | None) -> str:
    subset = subset or "4_5"
    if subset not in FINEWEB_EDU_CHINESE_TIERS:
        raise InputError(f"--subset {subset}: opencsg/Fineweb-Edu-Chinese-V2.1 has the score tiers "
                         f"{', '.join(FINEWEB_EDU_CHINESE_TIERS)} (4_5: the most educational)")
    return subset


# ------------------------------------------------------------------------------------------------ CCI3-HQ
def cci3_folder(subset: str | None) -> str:
    if subset:
        raise InputError(f"--subset {subset}: BAAI/CCI3-HQ has no subsets (leave --subset out)")
    return "data"


HUB_CORPORA = [
    HubCorpus("fineweb", "HuggingFaceFW/fineweb", f"HuggingFaceFW/fineweb (English; --subset, default "
              f"{FINEWEB_DEFAULT_SUBSET}, or a dump such as CC-MAIN-2024-10)", fineweb_folder, ".parquet"),
    HubCorpus("fineweb-edu", "HuggingFaceFW/fineweb-edu", "HuggingFaceFW/fineweb-edu, likewise", fineweb_folder,
              ".parquet"),
    HubCorpus("fineweb-2", "HuggingFaceFW/fineweb-2", "HuggingFaceFW/fineweb-2, FineWeb's recipe for 1,000+ "
              "languages (--subset cmn_Hani: Chinese; cmn_Hani/test: its test split; --rehydrate)",
              fineweb2_folder, ".parquet", listing="data"),
    HubCorpus("fineweb-edu-chinese", "opencsg/Fineweb-Edu-Chinese-V2.1", "opencsg/Fineweb-Edu-Chinese-V2.1, "
              "educational Chinese web text by score tier (--subset 4_5, 3_4, 2_3; default 4_5)",
              fineweb_edu_chinese_folder, ".parquet"),
    HubCorpus("cci3-hq", "BAAI/CCI3-HQ", "BAAI/CCI3-HQ, 500 GB of Chinese web text kept by a quality classifier "
              "(gated: accept its conditions, set HF_TOKEN)", cci3_folder, ".jsonl"),
]
ALREADY_DEDUPLICATED = tuple(corpus.name for corpus in HUB_CORPORA)  # each was deduplicated when it was made


def hub_root(corpus: HubCorpus, hub_mirror: str | None) -> str:
    if hub_mirror and not os.path.isdir(hub_mirror):
        raise InputError(f"--hub-mirror {hub_mirror}: no such folder")
    return hub_mirror.rstrip("/") if hub_mirror else f"hf://datasets/{corpus.repo}"


def close_subsets(corpus: HubCorpus, base: str, subset: str) -> str:
    """The subsets the repository (or mirror) has that look like `subset`, for a mistyped one's error line."""
    try:
        names = [os.path.basename(path.rstrip("/"))
                 for path in DataFolder(f"{base}/{corpus.listing}").ls("", detail=False)]
    except Exception:  # the listing is only a hint: without it the error still names the folder
        return ""
    names = sorted(name for name in names if FINEWEB2_SUBSET.fullmatch(name))
    near = difflib.get_close_matches(subset.split("/")[0], names, n=8, cutoff=0.5)
    shown = near or names[:8]
    return f" {base} has {len(names)} config(s); the nearest: {', '.join(shown)}" if names else ""


def hub_readers(corpus: HubCorpus, options, rejected_folder: str) -> list[PipelineStep]:
    """The checked reader of `corpus`'s files under the subset's folder (InputError, one line, before any work)."""
    folder_name = corpus.folder(options.subset)
    base = hub_root(corpus, options.hub_mirror)
    root = f"{base}/{folder_name}"
    try:
        folder = DataFolder(root)
        files = sorted(f for f in folder.list_files(recursive=True) if f.endswith(corpus.suffix))
    except FileNotFoundError:
        files, folder = [], None
    except Exception as e:  # network, authentication (a gated repository): report it before writing anything
        detail = " ".join(str(e).split())  # (the Hub's errors span several lines; ours is one)
        gated = " (a gated repository: accept its conditions on the Hub, then set HF_TOKEN)" if any(
            word in detail for word in ("gated", "401", "403")) else ""
        raise InputError(f"cannot list {root}: {type(e).__name__}: {detail}{gated}") from None
    if not files:
        hint = close_subsets(corpus, base, options.subset) if corpus.listing and options.subset else ""
        raise InputError(f"{root}: no {corpus.suffix} files; is --subset {options.subset} right?{hint}"
                         if options.subset else f"{root}: no {corpus.suffix} files")
    reader = CheckedJsonlReader if corpus.suffix == ".jsonl" else CheckedParquetReader
    return [reader(folder, files, rejected_folder, text_key=options.text_key)]
