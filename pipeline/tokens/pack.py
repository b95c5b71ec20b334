"""Cut the tasks' token streams into fixed-size shards: the last, single-process stage of `prepare`.

The streams of tasks 0, 1, 2, ... are read back to back as one stream (memory-mapped, never loaded whole). The
validation shard `val_000000.bin` takes whole documents from the start of that stream until it holds
`val_tokens` tokens (never more than VAL_MAX_FRACTION of the corpus, so that a small corpus keeps most of its text
for training; leading documents longer than that cap go to train: `val_split`); the rest, in stream order, is cut
into `train_000001.bin`, `train_000002.bin`, ... of exactly `shard_tokens` tokens
(the last one holds the remainder), documents running across shard boundaries as in build-nanogpt. A shard's
`documents` count is the number of documents whose end-of-text token falls inside it.
"""
from pathlib import Path

import numpy as np

from gptstack.errors import ShardError
from pipeline.shards import shard_entry, shard_name, write_shard
from pipeline.tokens.tokenize_step import task_stream_paths

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


def val_split(doc_ends: np.ndarray, val_tokens: int) -> tuple[int, int]:
    """[start, end) of the validation split in the stream: whole documents until it holds `val_tokens` tokens, and
    never more than VAL_MAX_FRACTION of the corpus, not even by part of a document.

    The document that would take the split past the cap ends it before that document (the split then holds a bit
    less than the cap). A document longer than the cap by itself cannot be in it at all: when the stream starts with
    such documents, they go to train and the split starts after them. Otherwise one long page that the shuffle put
    first would be the whole validation set, and a large share of the corpus that never trains.
    """
    total = int(doc_ends[-1]) if len(doc_ends) else 0
    cap = int(total * VAL_MAX_FRACTION)
    target = min(val_tokens, cap)
    if target <= 0:
        return 0, 0
    lengths = np.diff(doc_ends, prepend=0)
    fits = np.flatnonzero(lengths <= cap)
    if not len(fits):
        return 0, 0
    start = int(doc_ends[fits[0]] - lengths[fits[0]])  # after the leading documents longer than the cap
    last = min(int(np.searchsorted(doc_ends, start + target, side="left")), len(doc_ends) - 1)  # reaches the target
    if doc_ends[last] - start > cap:  # it would cross the cap: the split ends before it
        last -= 1
    return start, int(doc_ends[last])


def held_out_split(doc_ends: np.ndarray, val_tokens: int) -> int:
    """The end of the validation split taken from a held-out stream (--val-subset): whole documents up to
    `val_tokens` tokens, at least one; no cap, since nothing of it would have trained."""
    if not len(doc_ends) or val_tokens <= 0:
        return 0
    return int(doc_ends[max(int(np.searchsorted(doc_ends, val_tokens, side="right")) - 1, 0)])


def pack_shards(stream_folder, tasks: int, out_folder, val_tokens: int, shard_tokens: int, progress=None,
                val_stream_folder=None) -> list[dict]:
    """Write the shards into `out_folder` and return their manifest entries (file, split, tokens, documents, sha256).

    `progress(tokens)` is called after each shard, for a progress bar. `val_stream_folder`: a one-task stream of
    held-out documents (pipeline/tokens/val_source.py) that the validation shard is cut from instead; the whole
    stream then trains.
    """
    stream = TokenStream(stream_folder, tasks)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    if val_stream_folder is None:
        val_stream = stream
        val_start, val_end = val_split(stream.doc_ends, val_tokens)
    else:
        val_stream = TokenStream(val_stream_folder, 1)
        val_start, val_end = 0, held_out_split(val_stream.doc_ends, val_tokens)
    # train: the stream without the validation split, in stream order, cut into shard_tokens pieces
    cut = (val_start, val_end) if val_stream is stream else (0, 0)
    train = [(lo, hi) for lo, hi in ((0, cut[0]), (cut[1], len(stream))) if lo < hi]
    train_tokens = sum(hi - lo for lo, hi in train)
    bounds = [("val", val_stream, [(val_start, val_end)])] if val_end > val_start else []
    bounds += [("train", stream, ranges_of(train, start, min(start + shard_tokens, train_tokens)))
               for start in range(0, train_tokens, shard_tokens)]
    entries = []
    for index, (split, source, ranges) in enumerate(bounds, start=0 if val_end > val_start else 1):
        name = shard_name(split, index)
        digest = write_shard(out_folder / name, [chunk for lo, hi in ranges for chunk in source.chunks(lo, hi)])
        tokens = sum(hi - lo for lo, hi in ranges)
        entries.append(shard_entry(name, split, tokens, sum(source.documents_ending_in(lo, hi) for lo, hi in ranges),
                                   digest))
        if progress:
            progress(tokens)
    return entries


def ranges_of(pieces: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Stream ranges holding tokens [start, end) of the concatenation of `pieces` (stream ranges, in order)."""
    out, offset = [], 0
    for lo, hi in pieces:
        a, b = max(start, offset), min(end, offset + hi - lo)
        if a < b:
            out.append((lo + a - offset, lo + b - offset))
        offset += hi - lo
    return out
