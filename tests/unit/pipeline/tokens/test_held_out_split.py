"""The validation split cut from a held-out stream (--val-subset): whole documents up to --val-tokens, at least
one, no share-of-corpus cap."""
import numpy as np

from pipeline.tokens.pack import held_out_split


def test_whole_documents_up_to_the_budget_and_at_least_one():
    ends = np.cumsum([40, 30, 50, 20])  # 40, 70, 120, 140
    assert held_out_split(ends, 100) == 70  # the third document would cross 100: it is left out whole
    assert held_out_split(ends, 70) == 70
    assert held_out_split(ends, 10) == 40  # a first document longer than the budget is still taken
    assert held_out_split(ends, 10**9) == 140  # all of it: nothing of a held-out split would have trained
    assert held_out_split(np.zeros(0, np.int64), 100) == 0
