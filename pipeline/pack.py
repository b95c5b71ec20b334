"""Cut the tasks' token streams into fixed-size shards: the last, single-process stage of `prepare`.

The streams of tasks 0, 1, 2, ... are read back to back as one stream (memory-mapped, never loaded whole). The
validation shard `val_000000.bin` takes whole documents from the start of that stream until it holds
`val_tokens` tokens (never more than VAL_MAX_FRACTION of the corpus, so that a small corpus keeps most of its text
for training); the rest is cut into `train_000001.bin`, `train_000002.bin`, ... of exactly `shard_tokens` tokens
(the last one holds the remainder), documents running across shard boundaries as in build-nanogpt. A shard's
`documents` count is the number of documents whose end-of-text token falls inside it.
"""
from pathlib import Path

import numpy as np

from pipeline.errors import ShardError
from pipeline.shards import shard_entry, shard_name, write_shard
from pipeline.tokenize_step import task_stream_paths

VAL_MAX_FRACTION = 0.1


class TokenStream:
    """The concatenation of the tasks' token files, sliceable without copying it into memory."""

    def __init__(self, folder, tasks: int):
        self.parts, self.doc_tokens = [], []
        for rank in range(tasks):
            tokens_path, lengths_path = task_stream_paths(folder, rank)
            if not tokens_path.is_file() or not lengths_path.is_file():
                raise ShardError(f"{tokens_path}: missing; task {rank} did not finish")
            size = tokens_path.stat().st_size // 2
            tokens = np.memmap(tokens_path, dtype=np.uint16, mode="r") if size else np.zeros(0, np.uint16)
            lengths = np.fromfile(lengths_path, dtype=np.int64)
            if lengths.sum() != len(tokens):
                raise ShardError(f"{tokens_path}: holds {len(tokens)} tokens but its documents add up to "
                                 f"{lengths.sum()}; delete the folder and run again")
            self.parts.append(tokens)
            self.doc_tokens.append(lengths)
        self.starts = np.cumsum([0] + [len(part) for part in self.parts])
        self.doc_ends = np.cumsum(np.concatenate(self.doc_tokens)) if self.doc_tokens else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def chunks(self, start: int, end: int) -> list[np.ndarray]:
        """Tokens [start, end) of the whole stream as a list of memory-mapped slices."""
        out = []
        for part, part_start in zip(self.parts, self.starts[:-1]):
            lo, hi = max(start, part_start), min(end, part_start + len(part))
            if lo < hi:
                out.append(part[lo - part_start:hi - part_start])
        return out

    def documents_ending_in(self, start: int, end: int) -> int:
        return int(np.searchsorted(self.doc_ends, end, side="right") - np.searchsorted(self.doc_ends, start, "right"))


def val_split_end(doc_ends: np.ndarray, val_tokens: int) -> int:
    """Where the validation split ends: after the first whole documents holding `val_tokens` (capped) tokens."""
    total = int(doc_ends[-1]) if len(doc_ends) else 0
    target = min(val_tokens, int(total * VAL_MAX_FRACTION))
    if target <= 0:
        return 0
    documents = int(np.searchsorted(doc_ends, target, side="left")) + 1  # the document that reaches the target
    if doc_ends[documents - 1] >= total:  # it would leave nothing to train on
        documents -= 1
    return int(doc_ends[documents - 1]) if documents else 0


def pack_shards(stream_folder, tasks: int, out_folder, val_tokens: int, shard_tokens: int, progress=None) -> list[dict]:
    """Write the shards into `out_folder` and return their manifest entries (file, split, tokens, documents, sha256).

    `progress(tokens)` is called after each shard, for a progress bar.
    """
    stream = TokenStream(stream_folder, tasks)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    val_end = val_split_end(stream.doc_ends, val_tokens)
    bounds = [("val", 0, val_end)] if val_end else []
    bounds += [("train", start, min(start + shard_tokens, len(stream)))
               for start in range(val_end, len(stream), shard_tokens)]
    entries = []
    for index, (split, start, end) in enumerate(bounds, start=0 if val_end else 1):
        name = shard_name(split, index)
        digest = write_shard(out_folder / name, stream.chunks(start, end))
        entries.append(shard_entry(name, split, end - start, stream.documents_ending_in(start, end), digest))
        if progress:
            progress(end - start)
    return entries
