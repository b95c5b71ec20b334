"""Global shuffle: a seeded permutation of the whole corpus, without holding the corpus in memory.

Each document gets a key, the first 8 bytes of a BLAKE2b hash of its id and text keyed with the seed: a number that
looks random, is the same for the same seed and document, and differs between seeds. The output order is the order
of the keys (ties, which only identical records can have in practice, broken by the record's bytes), which is a
permutation of the input that depends on the seed and the documents only, never on the number of tasks.

Two runs of the executor make it (see pipeline/runner/stages.py):
  scatter  one task per stage file: each document goes, as one line `<key hex>\\t<json>`, to the bucket that holds
           its key's range (bucket = key * buckets // 2**64), into `scatter/<bucket>/<rank>.jsonl`;
  sort     task r takes a contiguous block of buckets, reads each bucket whole, sorts it by key and appends it to
           its `<rank>.jsonl.zst`. Files of ranks 0, 1, 2, ... are therefore the corpus in key order.
Memory: one bucket at a time, about corpus size / buckets (`--shuffle-buckets`, default 256: ~200 MB buckets for
FineWeb's sample-10BT). Like every stage folder, the scatter files go with the work folder when the run is done.
"""
import hashlib
from pathlib import Path

import orjson
from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from gptstack.files import open_for_write
from gptstack.formats import seed_argument
from pipeline.read.blocks import contiguous_block
from pipeline.runner.stages import STAGE_FILE, Stage, StageReader, stage_record

DEFAULT_SHUFFLE_BUCKETS = 256
KEY_HEX = 16  # characters of the key at the start of a scattered line


def shuffle_key(seed: int, document_id, text: str) -> int:
    digest = hashlib.blake2b(f"{document_id}\0{text}".encode("utf-8", "surrogatepass"), digest_size=8,
                             key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big")


def bucket_of(key: int, buckets: int) -> int:
    return key * buckets >> 64


class ShuffleScatter(PipelineStep):
    """Write every document, prefixed by its key, into the bucket of its key (a terminal step)."""

    name = "🎲 Shuffle scatter"
    type = "🔀 - SHUFFLE"

    def __init__(self, output_folder: str, seed: int, buckets: int):
        super().__init__()
        self.output_folder, self.seed, self.buckets = str(output_folder), seed, buckets

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = {}
        try:
            for document in data:
                with self.track_time():
                    key = shuffle_key(self.seed, document.id, document.text)
                    bucket = bucket_of(key, self.buckets)
                    if bucket not in files:
                        path = Path(self.output_folder) / f"{bucket:05d}" / f"{rank:05d}.jsonl"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        files[bucket] = open_for_write(path, "wb", buffering=1 << 16)  # a rerun task starts afresh
                    # Documents come from stage files (JSON), so their metadata holds JSON types only: orjson
                    # writes them as they were read, with no conversion of its own needed.
                    files[bucket].write(f"{key:016x}\t".encode() + orjson.dumps(
                        stage_record(None, document), option=orjson.OPT_APPEND_NEWLINE))
                self.stat_update("documents")
        finally:
            for file in files.values():
                file.close()
        return
        yield


class ShuffleSort(PipelineStep):
    """Sort this task's block of buckets by key into `<rank>.jsonl.zst` (a reader step: it starts a pipeline)."""

    name = "🎲 Shuffle sort"
    type = "🔀 - SHUFFLE"

    def __init__(self, scatter_folder: str, output_folder: str, buckets: int):
        super().__init__()
        self.scatter_folder, self.output_folder, self.buckets = str(scatter_folder), str(output_folder), buckets

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        output = get_datafolder(self.output_folder)
        name = STAGE_FILE.format(rank=rank)
        with output.open(name + ".tmp", "wb", compression="zstd") as out:
            for bucket in contiguous_block(range(self.buckets), rank, world_size):
                folder = Path(self.scatter_folder) / f"{bucket:05d}"
                if not folder.is_dir():
                    continue
                with self.track_time("bucket"):
                    lines = []
                    for path in sorted(folder.glob("*.jsonl")):
                        with open(path, "rb") as f:
                            lines.extend(f)
                    lines.sort()  # by key (fixed-width hex at the start), then the record itself
                    for line in lines:
                        out.write(line[KEY_HEX + 1:])
                self.stat_update("documents", value=len(lines), unit="bucket")
                self.stat_update("buckets")
        output.mv(name + ".tmp", name)
        return
        yield


def add_shuffle_arguments(group) -> None:
    """--seed and --shuffle-buckets, into an argparse parser or argument group."""
    group.add_argument("--seed", type=seed_argument, default=1337,
                       help="seed of the global shuffle of documents before tokenization: the same seed and input "
                            "give the same shards, another seed another order (default: 1337)")
    group.add_argument("--shuffle-buckets", type=int, default=DEFAULT_SHUFFLE_BUCKETS,
                       help="the shuffle sorts the corpus in this many pieces, one in memory at a time (about corpus "
                            f"size / N each); raise it for corpora beyond ~50 GB (default: {DEFAULT_SHUFFLE_BUCKETS})")


def shuffle_stages(input_folder, folder, tasks: int, seed: int, buckets: int) -> list[Stage]:
    """scatter and sort; the shuffled documents end up in `folder/documents/<rank>.jsonl.zst`."""
    folder = Path(folder)
    scatter, documents = folder / "scatter", folder / "documents"
    return [
        Stage("shuffle-scatter", [StageReader(input_folder), ShuffleScatter(str(scatter), seed, buckets)], tasks,
              [scatter], {"seed": seed, "buckets": buckets}),
        Stage("shuffle-sort", [ShuffleSort(str(scatter), str(documents), buckets)], tasks, [documents],
              {"buckets": buckets}),
    ]
