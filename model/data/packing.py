"""Document-aligned training rows (`data.packing: bos_aligned`): every row starts at a document start.

Documents. In a shard folder every document ends with the end-of-text token (the manifest's `eot_token`), and
documents run across shard boundaries. Here a document is that token, used as BOS, followed by the text of the next
document: [EOT, t1, ..., tn] (the split's first document gets the BOS its missing predecessor would have given);
documents without text are skipped. Targets are the next tokens, as in the stream: a document's last token learns
to predict the next document's BOS, i.e. the end of the text.

Rows (nanochat's best fit). A row holds seq_len + 1 tokens (x = row[:-1], y = row[1:]). A buffer holds `window`
documents; before each choice it is refilled in document order. The largest buffered document that fits whole in
the space left goes next; when none fits, the shortest buffered one is cropped to fill the row exactly and the rest
of it is dropped. So every row is full (no padding) and every row starts with BOS; the price is the cropped tokens.

Order and blocks (what makes it deterministic, world-size free and resumable). The documents of epoch e are visited
in the order `np.random.default_rng([seed, e]).permutation(D)` (`[seed, key, e]` for a mixture's source, the key
of model/data/mixture.py; identity with shuffle off). Each epoch's order is cut into blocks of
BLOCK_WINDOWS * window documents (the last one shorter), and each block is packed on its own: from an empty buffer,
which it drains at its end (best fit among fewer and fewer documents; a last row that cannot be filled is dropped,
its tokens counted as cropped). So a block's rows depend on the seed and its number alone; the global row stream is
the blocks' rows in order, shared by all ranks exactly like the stream's windows (model/data/batches.py). Packing
reads lengths only, never tokens, so every rank packs every block and then reads the tokens of its own rows.

Row k lies in the block where the running count of rows passes k. The packer keeps a cursor (block, its first
row) and walks forward from it; a checkpoint records the cursor, so a resume packs one block again, not the whole
run so far. The cursor is only a hint: starting from (0, 0) gives the same rows, just more slowly.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

import numpy as np

from gptstack.errors import ShardError
from pipeline.shards import open_shard

BLOCK_WINDOWS = 16  # documents per block = 16 windows: the drain at a block's end packs 1/16 of them less tightly
SCAN_TOKENS = 1 << 24  # tokens compared at a time when the end-of-text positions are indexed
SAMPLE_ROWS = 4096  # rows the plan line's fill and cropped share are measured on (whole blocks, from row 0)
_ARRIVAL_BITS = 32  # a buffer key is length << 32 | the document's place in its block (ties: the earlier one)
_ARRIVAL = (1 << _ARRIVAL_BITS) - 1


class Documents:
    """The documents of one split of a shard folder: where each one's text starts in the split's token stream (the
    shards back to back) and its length with its BOS."""

    def __init__(self, shards: list[np.ndarray], eot: int, where: str):
        self.shards, self.eot, self.where = shards, eot, where
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
        ends = []
        for shard, offset in zip(shards, self.offsets[:-1]):
            for start in range(0, len(shard), SCAN_TOKENS):
                ends.append(np.flatnonzero(shard[start:start + SCAN_TOKENS] == eot) + (offset + start))
        ends = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
        total = int(self.offsets[-1])
        if len(ends) == 0:
            raise ShardError(f"{where}: no end-of-text token (id {eot}) in the shards: without document boundaries "
                             f"data.packing=bos_aligned has nothing to align to; use data.packing=stream")
        starts = np.concatenate([[0], ends + 1])  # text of document i: [starts[i], stops[i])
        stops = np.concatenate([ends, [total]])
        keep = stops > starts  # no text: two end-of-text tokens in a row, or the one that ends the split
        self.starts = starts[keep].astype(np.int64)
        self.lengths = (stops - starts)[keep].astype(np.int64) + 1  # + its BOS
        self.count = len(self.starts)
        self.tokens = int(self.lengths.sum())

    def read(self, doc: int, count: int) -> np.ndarray:
        """The first `count` tokens of document `doc`, its BOS first."""
        start, stop = int(self.starts[doc]), int(self.starts[doc]) + count - 1
        parts = [np.array([self.eot], dtype=np.uint16)]
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while start < stop:  # a document may run across shard boundaries
            end = min(stop, int(self.offsets[first + 1]))
            parts.append(self.shards[first][start - self.offsets[first]:end - self.offsets[first]])
            start, first = end, first + 1
        return np.concatenate(parts)


@dataclass
class Block:
    """The rows of one block: row i is pieces [row_ends[i-1], row_ends[i]), piece j the first `take[j]` tokens of
    document `doc[j]` (a document number of the split)."""
    doc: np.ndarray
    take: np.ndarray
    row_ends: np.ndarray
    tokens: int  # document tokens the block consumed (whole, cropped and in a dropped last row)

    @property
    def rows(self) -> int:
        return len(self.row_ends)


def pack_block(lengths: list[int], capacity: int, window: int) -> tuple[list[int], list[int], list[int]]:
    """Best-fit rows of `capacity` tokens from documents of these lengths (in order), with a buffer of `window`:
    (document index of each piece, tokens it takes, end of each row in the pieces). A last row that cannot be
    filled is dropped."""
    buffer: list[int] = []  # keys length << 32 | index, sorted: bisect finds the best fit
    docs, takes, row_ends = [], [], []
    next_doc, used = 0, 0
    while True:
        while len(buffer) < window and next_doc < len(lengths):
            insort(buffer, (lengths[next_doc] << _ARRIVAL_BITS) | next_doc)
            next_doc += 1
        if not buffer:
            break
        space = capacity - used
        fits = bisect_right(buffer, (space << _ARRIVAL_BITS) | _ARRIVAL) - 1
        if fits >= 0:  # the largest that fits whole; of equal lengths the earliest
            key = buffer.pop(bisect_left(buffer, (buffer[fits] >> _ARRIVAL_BITS) << _ARRIVAL_BITS))
            take = key >> _ARRIVAL_BITS
        else:  # none fits: crop the shortest (the least text lost) to fill the row exactly
            key, take = buffer.pop(0), space
        docs.append(key & _ARRIVAL)
        takes.append(take)
        used += take
        if used == capacity:
            row_ends.append(len(docs))
            used = 0
    cut = row_ends[-1] if row_ends else 0
    return docs[:cut], takes[:cut], row_ends


class DocumentPacker:
    """The global row stream of one split: row k (seq_len + 1 tokens) for any k, walking blocks from a cursor."""

    def __init__(self, documents: Documents, seq_len: int, window: int, seed: int, shuffle: bool,
                 key: int | None = None):
        self.documents, self.seq_len, self.window = documents, seq_len, window
        self.seed, self.shuffle, self.key = seed, shuffle, key
        self.capacity = seq_len + 1
        if documents.tokens < self.capacity:
            raise ShardError(f"{documents.where}: the documents hold {documents.tokens} tokens with their BOS, fewer "
                             f"than one row of seq_len + 1 = {self.capacity}")
        self.block_documents = BLOCK_WINDOWS * window
        self.blocks_per_epoch = -(-documents.count // self.block_documents)
        self.cursor = (0, 0)  # (block, global index of its first row)
        self._blocks: dict[int, Block] = {}
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The documents of `epoch` in the order they are packed."""
        if not self.shuffle:
            return np.arange(self.documents.count)
        if self._order is None or self._order[0] != epoch:
            seed = [self.seed, epoch] if self.key is None else [self.seed, self.key, epoch]
            self._order = (epoch, np.random.default_rng(seed).permutation(self.documents.count))
        return self._order[1]

    def block(self, index: int) -> Block:
        cached = self._blocks.get(index)
        if cached is not None:
            return cached
        epoch, part = divmod(index, self.blocks_per_epoch)
        docs = self.order(epoch)[part * self.block_documents:(part + 1) * self.block_documents]
        lengths = self.documents.lengths[docs]
        picked, take, row_ends = pack_block(lengths.tolist(), self.capacity, self.window)
        block = Block(docs[np.array(picked, dtype=np.int64)], np.array(take, dtype=np.int64),
                      np.array(row_ends, dtype=np.int64), int(lengths.sum()))
        if len(self._blocks) >= 4:  # the ranks of a step read neighbouring rows: the last few blocks suffice
            self._blocks.pop(min(self._blocks))
        self._blocks[index] = block
        return block

    def locate(self, row: int) -> tuple[Block, int]:
        """The block holding global row `row`, and the row's place in it; moves the cursor there."""
        index, first = self.cursor if row >= self.cursor[1] else (0, 0)
        empty = 0
        while True:
            block = self.block(index)
            if row < first + block.rows:
                self.cursor = (index, first)
                return block, row - first
            empty = empty + 1 if block.rows == 0 else 0
            if empty > self.blocks_per_epoch:  # a whole epoch without a row: it would never end
                raise ShardError(f"{self.documents.where}: no block of documents fills one row of "
                                 f"{self.capacity} tokens; lower data.seq_len or use data.packing=stream")
            index, first = index + 1, first + block.rows

    def row(self, row: int) -> np.ndarray:
        """The seq_len + 1 tokens of global row `row`: whole documents and at most one cropped one at its end."""
        block, local = self.locate(row)
        start = int(block.row_ends[local - 1]) if local else 0
        pieces = range(start, int(block.row_ends[local]))
        return np.concatenate([self.documents.read(int(block.doc[j]), int(block.take[j])) for j in pieces])

    def measure(self, rows: int = SAMPLE_ROWS) -> dict:
        """Fill (row positions holding document tokens) and cropped share (document tokens read but not trained
        on) over the first whole blocks holding at least `rows` rows (one epoch at most)."""
        made, filled, read = 0, 0, 0
        for index in range(self.blocks_per_epoch):
            block = self.block(index)
            made, filled, read = made + block.rows, filled + int(block.take.sum()), read + block.tokens
            if made >= rows:
                break
        return {"rows": made, "fill": filled / (made * self.capacity) if made else 0.0,
                "cropped": (read - filled) / read if read else 0.0}

    def epochs(self, row: int) -> float:
        """Epochs of documents read before global row `row` (fractional; within a block by its rows)."""
        block, local = self.locate(row)
        epoch, part = divmod(self.cursor[0], self.blocks_per_epoch)
        in_block = min(self.block_documents, self.documents.count - part * self.block_documents)
        return epoch + (part * self.block_documents + in_block * local / max(block.rows, 1)) / self.documents.count

    # ---- checkpoints: the cursor, and what must not change for it to hold ----------------------------------
    def state_dict(self, row: int) -> dict:
        """The cursor at `row`, the next row to read: the same whatever rows this rank read before."""
        self.locate(row)
        return {"documents": self.documents.count, "block": self.cursor[0], "first_row": self.cursor[1]}

    def load_state_dict(self, state: dict, where: str, row: int) -> None:
        """Continue at `row`, the next row to read, from the saved cursor: the block holding that row, or within an
        epoch before it (a damaged cursor far from its counter would make the walk endless)."""
        if state.get("documents") != self.documents.count:
            raise ShardError(f"{where}: the checkpoint's rows were packed from {state.get('documents')} documents, "
                             f"these shards hold {self.documents.count}: the row stream would not continue")
        self._blocks.clear()
        index, first = int(state["block"]), int(state["first_row"])
        for _ in range(self.blocks_per_epoch + 2):
            rows = self.block(index).rows
            if first <= row < first + rows:
                self.cursor = (index, first)
                return
            index, first = index + 1, first + rows
        raise ShardError(f"{where}: the checkpoint's packing cursor (block {state['block']}, first row "
                         f"{state['first_row']}) does not lead to its row {row}: trainer_state.json is damaged")


def split_documents(folder, split: str) -> Documents:
    """The documents of a split of a ShardFolder; the manifest's end-of-text id must be its tokenizer's."""
    eot = folder.manifest["eot_token"]
    if folder.tokenizer.eot_token != eot:
        raise ShardError(f"{folder}: manifest.json says eot_token {eot} but its tokenizer {folder.tokenizer.label!r} "
                         f"ends documents with {folder.tokenizer.eot_token}: data.packing=bos_aligned cannot tell "
                         f"where documents start")
    paths = folder.paths(split)
    if not paths:
        raise ShardError(f"{folder}: manifest lists no {split!r} shards")
    return Documents([open_shard(path) for path in paths], eot, f"{folder} ({split})")


def packing_state(window: int, **positions) -> dict:
    """The loader state's `packing` record; `positions` are the packers' cursors (one folder) or `sources`."""
    return {"mode": "bos_aligned", "window": window, "block_documents": BLOCK_WINDOWS * window, **positions}


def check_packing(state: dict, mode: str, window: int, where: str) -> dict | None:
    """Refuse a loader state written with another packing (the counter would index another stream); the saved
    `packing` record, None for the stream."""
    saved = state.get("packing")
    saved_mode = saved["mode"] if saved else "stream"
    if saved_mode != mode:
        raise ShardError(f"{where}: the checkpoint was trained with data.packing={saved_mode}, the config says "
                         f"{mode}; resume with data.packing={saved_mode} (its row stream cannot continue as another)")
    if saved and (saved["window"], saved["block_documents"]) != (window, BLOCK_WINDOWS * window):
        raise ShardError(f"{where}: the checkpoint was packed with data.packing_window={saved['window']}, the config "
                         f"says {window}; resume with data.packing_window={saved['window']}")
    return saved


class PackedBatches:
    """TokenBatches' twin for `data.packing: bos_aligned`: (x, y) int64 batches of shape (batch_size, seq_len) for
    one rank, rank r taking global rows [c + r*B, c + (r+1)*B) of the packed row stream; the state is the counter
    c (samples_consumed) and the packer's cursor."""

    def __init__(self, folder, split="train", batch_size=8, seq_len=1024, rank=0, world_size=1, seed=1337,
                 shuffle=True, window=1000):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.folder, self.data_dir = folder, folder.path
        self.split, self.batch_size, self.seq_len = split, batch_size, seq_len
        self.rank, self.world_size, self.seed, self.shuffle, self.window_size = rank, world_size, seed, shuffle, window
        self.packer = DocumentPacker(split_documents(folder, split), seq_len, window, seed, shuffle)
        self.samples_consumed = 0

    def window(self, stream_index: int) -> np.ndarray:
        """The seq_len + 1 tokens of global row `stream_index` (TokenBatches' name, for tests and debugging)."""
        return self.packer.row(stream_index)

    def next_batch(self):
        import torch

        first = self.samples_consumed + self.rank * self.batch_size
        rows = np.stack([self.packer.row(k) for k in range(first, first + self.batch_size)]).astype(np.int64)
        self.samples_consumed += self.world_size * self.batch_size
        batch = torch.from_numpy(rows)
        return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()

    def reset(self) -> None:
        self.samples_consumed = 0

    def state_dict(self) -> dict:
        return {"samples_consumed": self.samples_consumed, "seed": self.seed, "shuffle": self.shuffle,
                "seq_len": self.seq_len, "split": self.split,
                "packing": packing_state(self.window_size, **self.packer.state_dict(self.samples_consumed))}

    def load_state_dict(self, state: dict) -> None:
        saved = check_packing(state, "bos_aligned", self.window_size, str(self.data_dir))
        for key in ("seed", "shuffle", "seq_len", "split"):
            if key in state and state[key] != getattr(self, key):
                raise ShardError(f"{self.data_dir}: loader state has {key}={state[key]!r} but this loader has "
                                 f"{getattr(self, key)!r}; resuming would not continue the same row stream")
        self.packer.load_state_dict(saved, str(self.data_dir), int(state["samples_consumed"]))
        self.samples_consumed = int(state["samples_consumed"])
