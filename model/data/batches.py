"""Training batches from token shards, with exact resume on any number of ranks.

Every shard of a split is cut into non-overlapping windows of seq_len + 1 tokens (window i of a shard holds tokens
[i*T, i*T + T + 1)); the windows of all shards, in shard order, form one global list of N windows. Each epoch walks
a permutation of that list, `np.random.default_rng([seed, epoch]).permutation(N)` (identity when shuffle=False).

All ranks together consume this one global stream in order: at each call, rank r takes the stream items
[c + r*B, c + (r+1)*B) and every rank then advances the shared counter c ("samples_consumed") by world_size * B.
The state is only c, so training resumed with a different world size (or batch size) continues the very same
stream: no window is repeated or skipped. Stream item k is window perm_{k // N}[k % N].
"""

import numpy as np
import torch

from gptstack.errors import ShardError
from pipeline.shards import ShardFolder, open_shard


class TokenBatches:
    """(x, y) int64 batches of shape (batch_size, seq_len) for one rank; y is x shifted by one token."""

    def __init__(self, data_dir, split="train", batch_size=8, seq_len=1024, rank=0, world_size=1,
                 seed=1337, shuffle=True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.folder = data_dir if isinstance(data_dir, ShardFolder) else ShardFolder(data_dir)  # opened once
        self.data_dir = self.folder.path
        self.split, self.batch_size, self.seq_len = split, batch_size, seq_len
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.manifest = self.folder.manifest
        paths = self.folder.paths(split)
        if not paths:
            raise ShardError(f"{self.data_dir}: manifest lists no {split!r} shards")
        self.shards = [open_shard(path) for path in paths]
        windows = np.array([(len(tokens) - 1) // seq_len if len(tokens) > 0 else 0 for tokens in self.shards])
        self.windows_per_epoch = int(windows.sum())
        if self.windows_per_epoch == 0:
            raise ShardError(
                f"{self.data_dir}: the {split!r} shards hold fewer than seq_len + 1 = {seq_len + 1} tokens each"
            )
        self._first_window = np.concatenate([[0], np.cumsum(windows)])  # global index of each shard's window 0
        self.samples_consumed = 0
        self._epoch_order: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        if epoch not in self._epoch_order:
            self._epoch_order = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.windows_per_epoch)}
        return self._epoch_order[epoch]

    def window(self, stream_index: int) -> np.ndarray:
        """The seq_len + 1 tokens of global stream item `stream_index` (useful for tests and debugging)."""
        epoch, position = divmod(stream_index, self.windows_per_epoch)
        order = self._order(epoch)
        window = int(order[position]) if order is not None else position
        shard = int(np.searchsorted(self._first_window, window, side="right")) - 1
        start = (window - self._first_window[shard]) * self.seq_len
        return self.shards[shard][start:start + self.seq_len + 1]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.samples_consumed + self.rank * self.batch_size
        rows = np.stack([self.window(k) for k in range(first, first + self.batch_size)]).astype(np.int64)
        self.samples_consumed += self.world_size * self.batch_size
        batch = torch.from_numpy(rows)
        return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()

    def reset(self) -> None:
        """Back to the start of the stream (validation reads the same windows at every evaluation)."""
        self.samples_consumed = 0

    def state_dict(self) -> dict:
        return {"samples_consumed": self.samples_consumed, "seed": self.seed, "shuffle": self.shuffle,
                "seq_len": self.seq_len, "windows_per_epoch": self.windows_per_epoch, "split": self.split}

    def load_state_dict(self, state: dict) -> None:
        if "packing" in state:  # rows of model/data/packing.py: this counter would index other windows
            raise ShardError(f"{self.data_dir}: the checkpoint was trained with data.packing="
                             f"{state['packing'].get('mode')}; resume with that packing")
        for key in ("seed", "shuffle", "seq_len", "windows_per_epoch", "split"):
            if key in state and state[key] != getattr(self, key):
                raise ShardError(
                    f"{self.data_dir}: loader state has {key}={state[key]!r} but this loader has "
                    f"{getattr(self, key)!r}; resuming would not continue the same token stream"
                )
        self.samples_consumed = int(state["samples_consumed"])
