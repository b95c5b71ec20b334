"""Which source each window of a training mixture comes from: a deterministic, resumable interleave by weight.

A mixture is a list of sources (shard folders), each cut into windows as model/data/batches.py cuts one folder,
each with a weight. The global stream of training windows is a function of the seed and the global sample counter alone,
so, as for one folder, every rank computes its own slice and a run resumed on another number of ranks continues
the very same stream.

Per source: its windows form a stream of their own, epoch after epoch; item p of source s is window
`perm(s, p // N_s)[p % N_s]`, where perm(s, e) = `np.random.default_rng([seed, key(s), e]).permutation(N_s)`
(model/data/batches.py's convention with the source's key added; identity when shuffle=False) and key(s) is derived from
the source's name, so the order of the list does not matter. A small source therefore repeats epoch after epoch,
each a new permutation, and a large one is read without repetition.

Interleave: stream item k is the next unread item of one source. The stream is cut into blocks of BLOCK items.
How many items of each source the first b blocks hold is closed form (no walk from the start):
`C_s(b) = floor(w_s * b * BLOCK + 1/2)` for every source but the largest-weight one, which takes the rest, so the
counts sum exactly to b * BLOCK, never decrease, and stay within one item (the largest within S/2) of the ideal
w_s * n. Inside block b, source s has the quota q_s = C_s(b+1) - C_s(b); its j-th item is placed at the ideal
position (j + 1/2) / q_s of the block and the block is the merge of all sources' items by that position (ties by
source name). This is a low-discrepancy sequence like Megatron's greedy error-minimising blending index, but
each block is computed on its own in O(BLOCK) numpy work and cached, so the cost per batch does not grow with
the counter. Any n consecutive items hold w_s * n +- (S + 3) items of source s: over 10,000 windows the realised
share is within a few hundredths of a percentage point of the weight. A weight-0 source gets no item at all.

Phases (changing the mix at a resume): the weights hold from the counter at which they took effect, the phase's
`start`, where each source stood at `base[s]` items of its own stream. Stream item start + i is item i of the
interleave above, and the source it falls to continues from base[s] + (its count among items start..start+i-1).
When a run resumes at counter K with other weights (or another list of sources), a new phase starts at K whose
base is where every source stood at K: each source continues its current epoch's permutation where it stopped,
so no window of the current epoch is repeated and none is skipped; a source that is dropped keeps its position
for a later phase; a new source starts at item 0. Resuming with the same weights keeps the phase, so an
interrupted run and an uninterrupted one read the same stream. The checkpointed state (`state_dict`) is the
phase (start, weights, base per source), the seed, and per source its windows per epoch, position and epoch.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from gptstack.errors import GPTStackError

BLOCK = 1 << 16  # items per interleave block: large enough that every quota stays >= 0 for up to MAX_SOURCES
MAX_SOURCES = 128  # the remainder source's quota is >= BLOCK / S - S > 0 only while S^2 < BLOCK


class MixtureError(GPTStackError):
    """Sources, weights or a saved state a mixture cannot be built from."""


@dataclass(frozen=True)
class MixtureSource:
    name: str
    windows: int  # windows per epoch of this source's split
    weight: float


def source_key(name: str) -> int:
    """A 64-bit integer from the name: seeds the source's permutations independently of its place in the list."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def normalized_weights(weights: dict[str, float]) -> dict[str, float]:
    """Weights as fractions summing to 1 (0.6/0.4 and 3/2 are the same mixture); refuses unusable weights."""
    for name, weight in weights.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight) or weight < 0:
            raise MixtureError(f"source {name!r}: weight {weight!r} must be a number >= 0")
    total = math.fsum(weights.values())
    if total <= 0:
        raise MixtureError("every source has weight 0: nothing to train on")
    return {name: float(weight) / total for name, weight in weights.items()}


class MixtureSampler:
    """Maps global stream indices to (source, window); holds no position of its own (the caller's counter is it)."""

    def __init__(self, sources: list[MixtureSource], seed: int, shuffle: bool = True, block: int = BLOCK):
        names = [s.name for s in sources]
        if not sources:
            raise MixtureError("a mixture needs at least one source")
        if len(set(names)) != len(names):
            raise MixtureError(f"source names must differ: {', '.join(names)}")
        if len(sources) > MAX_SOURCES or len(sources) ** 2 >= block:
            raise MixtureError(f"at most {MAX_SOURCES} sources (got {len(sources)})")
        for s in sources:
            if not s.name:
                raise MixtureError("a source needs a non-empty name")
            if s.windows <= 0:
                raise MixtureError(f"source {s.name!r} has no training windows")
        self.sources, self.seed, self.shuffle, self.block = list(sources), seed, shuffle, block
        self.names = names
        self.windows = np.array([s.windows for s in sources], dtype=np.int64)
        self.fractions = normalized_weights({s.name: s.weight for s in sources})
        # Canonical order (by name) decides ties and the remainder source, so that reordering the list keeps
        # the stream; `_canon[i]` is the list index of the i-th source by name.
        self._canon = np.array(sorted(range(len(sources)), key=lambda i: names[i]), dtype=np.int64)
        self._canon_fractions = np.array([self.fractions[names[i]] for i in self._canon])
        positive = self._canon_fractions > 0
        # The largest weight takes the rounding remainder (first by name on a tie): its quota is never negative.
        self._remainder = int(np.argmax(self._canon_fractions))
        self._floor_sources = positive.copy()
        self._floor_sources[self._remainder] = False
        self.phase_start = 0
        self.base = np.zeros(len(sources), dtype=np.int64)  # items of each source read before phase_start
        self.parked: dict[str, dict] = {}  # sources of an earlier phase that are not in this list: their position
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    # ---- the interleave ---------------------------------------------------------------------------------------
    def _cumulative(self, block_index: int) -> np.ndarray:
        """Items of each source (canonical order) in the phase's first block_index blocks."""
        n = block_index * self.block
        counts = np.zeros(len(self.sources), dtype=np.int64)
        counts[self._floor_sources] = np.floor(self._canon_fractions[self._floor_sources] * n + 0.5).astype(np.int64)
        counts[self._remainder] = n - counts.sum()
        return counts

    def _block(self, block_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source list index of each item, its rank among its source's items in this block, counts before it)."""
        cached = self._blocks.get(block_index)
        if cached is not None:
            return cached
        before = self._cumulative(block_index)
        quotas = self._cumulative(block_index + 1) - before
        if (quotas < 0).any():  # cannot happen while len(sources)^2 < block (see MAX_SOURCES)
            raise AssertionError(f"negative quota {quotas} in block {block_index}")
        canonical = np.repeat(np.arange(len(quotas)), quotas)
        rank = np.arange(self.block, dtype=np.int64) - np.repeat(np.cumsum(quotas) - quotas, quotas)
        # (2j+1)/(2q) of integers is correctly rounded, so equal ideal positions compare equal: the tie-break by
        # source is then exact, and the order the same on every machine.
        ideal = (2 * rank + 1) / (2 * quotas[canonical])
        order = np.lexsort((canonical, ideal))
        source = self._canon[canonical[order]]
        before_by_list = np.empty_like(before)
        before_by_list[self._canon] = before
        if len(self._blocks) >= 4:  # ranks read neighbouring items: the current and next block suffice
            self._blocks.pop(min(self._blocks))
        self._blocks[block_index] = (source, rank[order], before_by_list)
        return self._blocks[block_index]

    def items(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """For stream items [start, start+count): (source list index, item index in that source's own stream)."""
        if start < self.phase_start:
            raise MixtureError(f"stream item {start} precedes this phase (it started at {self.phase_start})")
        sources, positions = [], []
        local, end = start - self.phase_start, start - self.phase_start + count
        while local < end:
            block_index, offset = divmod(local, self.block)
            take = min(end - local, self.block - offset)
            source, rank, before = self._block(block_index)
            chosen = source[offset:offset + take]
            sources.append(chosen)
            positions.append(self.base[chosen] + before[chosen] + rank[offset:offset + take])
            local += take
        if not sources:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(sources), np.concatenate(positions)

    def _order(self, source: int, epoch: int) -> np.ndarray:
        key = (source, epoch)
        if key not in self._orders:
            for old in [k for k in self._orders if k[0] == source and k[1] < epoch - 1]:
                del self._orders[old]  # a source only ever moves forward: earlier epochs are not read again
            rng = np.random.default_rng([self.seed, source_key(self.names[source]), epoch])
            self._orders[key] = rng.permutation(int(self.windows[source]))
        return self._orders[key]

    def locate(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """For stream items [start, start+count): (source list index, window index within that source)."""
        sources, positions = self.items(start, count)
        epochs, offsets = np.divmod(positions, self.windows[sources])
        if not self.shuffle:
            return sources, offsets
        windows = np.empty_like(offsets)
        for source, epoch in set(zip(sources.tolist(), epochs.tolist())):
            mask = (sources == source) & (epochs == epoch)
            windows[mask] = self._order(source, epoch)[offsets[mask]]
        return sources, windows

    def consumed(self, counter: int) -> np.ndarray:
        """Items of each source's own stream read before stream item `counter` (= windows taken, all epochs)."""
        if counter < self.phase_start:
            raise MixtureError(f"counter {counter} precedes this phase (it started at {self.phase_start})")
        block_index, offset = divmod(counter - self.phase_start, self.block)
        source, _, before = self._block(block_index)
        return self.base + before + np.bincount(source[:offset], minlength=len(self.sources))

    # ---- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self, counter: int) -> dict:
        """JSON-able: the phase, and per source where it stands at `counter` (position, epoch) for people."""
        consumed = self.consumed(counter)
        sources = {}
        for i, name in enumerate(self.names):
            epoch, position = divmod(int(consumed[i]), int(self.windows[i]))
            sources[name] = {"weight": self.fractions[name], "windows": int(self.windows[i]),
                             "base": int(self.base[i]), "consumed": int(consumed[i]), "epoch": epoch,
                             "position": position}
        return {"seed": self.seed, "shuffle": self.shuffle, "block": self.block, "phase_start": self.phase_start,
                "counter": counter, "sources": sources, "parked": dict(self.parked)}

    def load_state_dict(self, state: dict, counter: int) -> bool:
        """Continue a saved mixture at `counter`. Same weights and sources: the saved phase goes on (the stream
        is the one an uninterrupted run reads). Otherwise a new phase starts at `counter` from where each
        source stood. Returns True when a new phase started."""
        for key in ("seed", "shuffle", "block"):
            if state.get(key) != getattr(self, key):
                raise MixtureError(f"saved mixture has {key}={state.get(key)!r} but this one has "
                                   f"{getattr(self, key)!r}; the stream would not continue")
        saved = state["sources"]
        known = {**state.get("parked", {}), **saved}
        for i, name in enumerate(self.names):
            if name in known and known[name]["windows"] != int(self.windows[i]):
                raise MixtureError(f"source {name!r} was cut into {known[name]['windows']} windows when saved, now "
                                   f"{int(self.windows[i])} (other shards or seq_len): its epoch cannot continue")
        if counter < state["phase_start"]:
            raise MixtureError(f"counter {counter} precedes the saved phase start {state['phase_start']}")
        same = {name: s["weight"] for name, s in saved.items()} == self.fractions
        if same:
            self.phase_start = int(state["phase_start"])
            self.base = np.array([saved[name]["base"] for name in self.names], dtype=np.int64)
            self.parked = dict(state.get("parked", {}))
            self._blocks.clear()
            return False
        previous = MixtureSampler([MixtureSource(name, s["windows"], s["weight"]) for name, s in saved.items()],
                                  self.seed, self.shuffle, self.block)
        previous.phase_start = int(state["phase_start"])
        previous.base = np.array([s["base"] for s in saved.values()], dtype=np.int64)
        at_counter = dict(zip(previous.names, previous.consumed(counter).tolist()))
        positions = {name: p["consumed"] for name, p in state.get("parked", {}).items()}
        positions.update(at_counter)
        self.phase_start = counter
        self.base = np.array([positions.get(name, 0) for name in self.names], dtype=np.int64)
        self.parked = {name: {"windows": known[name]["windows"], "consumed": positions[name]}
                       for name in known if name not in self.names}
        self._blocks.clear()
        return True
