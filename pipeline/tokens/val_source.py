"""`pipeline.prepare --val-subset SUBSET`: the validation shard from a corpus's own held-out split.

FineWeb-2 publishes a `test` split for each language config (data/cmn_Hani/test/*.parquet, pipeline/read/hub.py).
Given `--val-subset cmn_Hani/test`, prepare reads that split in a stage of its own ("val", after tokenize, with
its own fingerprint so a rerun skips or resumes it like the others), tokenizes it with the run's tokenizer into
its own stream, and `pack_shards` cuts `val_000000.bin` from that stream (whole documents, up to --val-tokens)
instead of from the start of the shuffled training stream: every training document then goes to train.
Without the option nothing of this runs: same stages, same fingerprints, same shards.
"""
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gptstack.errors import InputError
from pipeline.read.corpora import SourceOptions, corpus_readers
from pipeline.read.hub import FINEWEB2_SUBSET, fineweb2_folder
from pipeline.runner.stages import Stage, input_signature
from pipeline.tokens.tokenize_step import TokenizeToStream

VAL_STAGE = "val"
VAL_TOKENS_FOLDER = "val-tokens"
# A token holds at least one byte, and real tokenizers average 3-6 bytes a token (English or Chinese): reading the
# held-out split until it holds 16 bytes per wanted token leaves --val-tokens reachable without tokenizing all of it.
BYTES_PER_TOKEN_READ = 16
SPLITS = {"fineweb-2": "test"}  # the corpora whose subsets have a held-out split, and its name


def val_subset_readers(corpus: str, val_subset: str, options: SourceOptions, val_tokens: int,
                       rejected_folder: str) -> list[PipelineStep]:
    """The checked readers of the held-out split (InputError, one line, before any work)."""
    if corpus not in SPLITS:
        raise InputError(f"--val-subset applies to --corpus {', '.join(SPLITS)} (a corpus that publishes a test "
                         f"split), not --corpus {corpus}; without it validation is cut from the shuffled corpus")
    match = FINEWEB2_SUBSET.fullmatch(val_subset)
    if not match or match.group("split") != SPLITS[corpus]:
        raise InputError(f"--val-subset {val_subset}: name a {corpus} config's {SPLITS[corpus]} split, e.g. "
                         f"cmn_Hani/{SPLITS[corpus]}")
    if options.subset and fineweb2_folder(options.subset) == fineweb2_folder(val_subset):
        raise InputError(f"--val-subset {val_subset}: is the training --subset too; validation must be held out")
    if val_tokens <= 0:
        raise InputError(f"--val-subset {val_subset}: needs --val-tokens above 0 (got {val_tokens})")
    options = SourceOptions(subset=val_subset, hub_mirror=options.hub_mirror, text_key=options.text_key)
    return [*corpus_readers(corpus, options, rejected_folder), StopAfterBytes(val_tokens * BYTES_PER_TOKEN_READ)]


def val_stage(readers: list, tokenizer, work: Path, threads: int, val_subset: str, tokenizer_config: dict) -> Stage:
    """One task reads the held-out split in order and tokenizes it into work/val-tokens."""
    folder = work / VAL_TOKENS_FOLDER
    steps = [*readers, TokenizeToStream(str(folder), tokenizer, threads)]
    return Stage(VAL_STAGE, steps, 1, [folder], {"val_subset": val_subset, "inputs": input_signature(readers[:-1]),
                                                 "read_bytes": readers[-1].limit, **tokenizer_config})


class StopAfterBytes(PipelineStep):
    """Pass documents until they hold `limit` bytes of UTF-8 text (the one that crosses it included)."""

    name = "✂ Stop after bytes"
    type = "🔢 - COUNTER"

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        seen = 0
        for document in data:
            yield document
            seen += len(document.text.encode("utf-8"))
            if seen >= self.limit:
                break
        if hasattr(data, "close"):
            data.close()
