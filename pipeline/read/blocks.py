"""How every stage splits its input among tasks: in contiguous blocks, so that the files of ranks 0, 1, 2, ... hold
the corpus in order for any number of tasks (pipeline/runner/stages.py)."""


def contiguous_block(items: list, rank: int, world_size: int) -> list:
    """Task `rank`'s share of `items`: a contiguous block, so task order = item order."""
    start, end = rank * len(items) // world_size, (rank + 1) * len(items) // world_size
    return items[start:end]
