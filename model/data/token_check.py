"""Token ids must be inside the model's vocabulary: checked over every shard before step 1.

A shard with valid header, size and checksum can still hold an id >= vocab_size (written by another tokenizer or a
buggy tool). Inside the padded vocabulary it would train silently on an embedding row no tokenizer produces (loss
inf); beyond it the embedding lookup fails mid-run. The scan is `pipeline.inspect`'s (one block at a time over the
memory-mapped shard), so `inspect` and the trainer refuse the same shards with the same words.
"""
from __future__ import annotations

from gptstack.errors import ShardError
from pipeline.inspect import token_range_problem
from pipeline.shards import ShardFolder, open_shard


def check_token_range(folder: ShardFolder, vocab_size: int) -> None:
    """Raise a one-line ShardError naming the shard, the id and its position if any token is >= vocab_size."""
    for path in folder.paths():
        problem = token_range_problem(path, open_shard(path), vocab_size)
        if problem:
            raise ShardError(f"{problem}; the model cannot train on it (written with another tokenizer, or damaged)")
