"""MixtureSampler: the interleave by weight, each source's own epochs, shares over any 10,000 windows, resume
with the same or changed weights, and the cost of a query far into a run."""
import json
import time

import numpy as np
import pytest

from model.data.mixture import BLOCK, MixtureError, MixtureSampler, MixtureSource

THREE = [MixtureSource("zh", 5_000, 0.6), MixtureSource("en", 70_000, 0.3), MixtureSource("code", 300, 0.1)]


def sliding_share_error(sources: np.ndarray, source: int, weight: float, width: int = 10_000) -> float:
    """Largest |share - weight| of `source` over every run of `width` consecutive items."""
    hits = np.concatenate([[0], np.cumsum(sources == source)])
    shares = (hits[width:] - hits[:-width]) / width
    return float(np.abs(shares - weight).max())


def source_stream(sampler: MixtureSampler, source: int, start: int, count: int) -> list[int]:
    sources, windows = sampler.locate(start, count)
    return windows[sources == source].tolist()


@pytest.mark.parametrize("weights", [
    [0.6, 0.3, 0.1],
    [1 / 3, 1 / 3, 1 / 3],
    [0.999, 0.0007, 0.0003],
    [5, 3, 2, 1, 1, 1, 0.5, 0.25, 0.125, 0.125],
])
@pytest.mark.parametrize("start", [0, 3 * BLOCK - 12_345, 10**12 + 7])
def test_share_over_any_10000_consecutive_windows_is_within_one_point(weights, start):
    sources = [MixtureSource(f"s{i}", 1000 + i, w) for i, w in enumerate(weights)]
    sampler = MixtureSampler(sources, seed=3)
    chosen, _ = sampler.items(start, 2 * BLOCK + 30_000)  # crosses block boundaries
    total = sum(weights)
    for i, weight in enumerate(weights):
        error = sliding_share_error(chosen, i, weight / total)
        # the requirement is 1 percentage point; the interleave is bounded by (S + 3) items in 10,000
        assert error <= (len(weights) + 3) / 10_000 < 0.01, (weights, i, error)


def test_each_source_walks_its_own_permutation_epoch_after_epoch():
    sampler = MixtureSampler(THREE, seed=11)
    sources, windows = sampler.locate(0, 40_000)
    code = windows[sources == 2].tolist()  # 300 windows at 10%: ~13 epochs
    assert len(code) == pytest.approx(4000, abs=2)
    for epoch in range(len(code) // 300):
        one_epoch = code[epoch * 300:(epoch + 1) * 300]
        assert sorted(one_epoch) == list(range(300))  # every window exactly once per epoch
    assert code[:300] != code[300:600] and code[:300] != sorted(code[:300])  # a new shuffle each epoch
    en = windows[sources == 1].tolist()
    assert len(set(en)) == len(en)  # the large source has not finished an epoch: no repetition
    assert sampler.consumed(40_000).tolist() == [int((sources == i).sum()) for i in range(3)]


def test_deterministic_from_seed_and_counter_whatever_the_chunking():
    a, b = MixtureSampler(THREE, seed=5), MixtureSampler(THREE, seed=5)
    whole = a.locate(1000, 9000)
    # rank r of 3 ranks with micro-batches of 7, in any order: the same items
    pieces = [b.locate(start, 7) for start in reversed(range(1000, 10_000, 7))][::-1]
    joined = (np.concatenate([p[0] for p in pieces])[:9000], np.concatenate([p[1] for p in pieces])[:9000])
    assert np.array_equal(whole[0], joined[0]) and np.array_equal(whole[1], joined[1])
    other_seed = MixtureSampler(THREE, seed=6).locate(1000, 9000)
    assert np.array_equal(other_seed[0], whole[0])  # the interleave is the same
    assert not np.array_equal(other_seed[1], whole[1])  # the windows are shuffled differently
    reordered = MixtureSampler(THREE[::-1], seed=5).locate(1000, 9000)
    names = [THREE[i].name for i in whole[0]]
    assert [THREE[::-1][i].name for i in reordered[0]] == names  # the list order does not matter
    assert np.array_equal(reordered[1], whole[1])


def test_unshuffled_sources_read_their_windows_in_order():
    sampler = MixtureSampler(THREE, seed=5, shuffle=False)
    assert source_stream(sampler, 0, 0, 20_000)[:5] == [0, 1, 2, 3, 4]


def test_weight_zero_source_contributes_nothing():
    sources = [MixtureSource("a", 100, 0.5), MixtureSource("off", 100, 0.0), MixtureSource("b", 100, 0.5)]
    sampler = MixtureSampler(sources, seed=1)
    chosen, _ = sampler.items(0, 3 * BLOCK)
    assert not (chosen == 1).any()
    assert sampler.consumed(3 * BLOCK)[1] == 0
    assert sampler.state_dict(3 * BLOCK)["sources"]["off"]["consumed"] == 0


def test_same_weights_at_resume_continue_the_uninterrupted_stream():
    reference = MixtureSampler(THREE, seed=2).locate(0, 200_000)
    first = MixtureSampler(THREE, seed=2)
    state = json.loads(json.dumps(first.state_dict(77_777)))  # through JSON, as trainer_state.json does
    resumed = MixtureSampler(THREE[::-1], seed=2)
    assert resumed.load_state_dict(state, 77_777) is False
    sources, windows = resumed.locate(77_777, 200_000 - 77_777)
    names = [THREE[::-1][i].name for i in sources]
    assert names == [THREE[i].name for i in reference[0][77_777:]]
    assert np.array_equal(windows, reference[1][77_777:])


def test_changed_weights_continue_each_source_where_it_stopped():
    n = 30_000
    before = MixtureSampler(THREE, seed=4)
    state = json.loads(json.dumps(before.state_dict(n)))
    assert state["sources"]["code"]["epoch"] == 10  # 3000 windows of a 300-window source
    annealing = [MixtureSource("zh", 5_000, 0.2), MixtureSource("en", 70_000, 0.2), MixtureSource("code", 300, 0.6)]
    after = MixtureSampler(annealing, seed=4)
    assert after.load_state_dict(state, n) is True
    assert after.phase_start == n
    # Each source's windows, before then after the change, are exactly its own uninterrupted stream.
    solo = {name: MixtureSampler([MixtureSource(name, w, 1.0)], seed=4) for name, w, _ in
            [(s.name, s.windows, s.weight) for s in THREE]}
    for i, source in enumerate(THREE):
        seen = source_stream(before, i, 0, n) + source_stream(after, i, n, 50_000)
        assert seen == source_stream(solo[source.name], 0, 0, len(seen)), source.name
    chosen, _ = after.items(n, 50_000)
    for i, weight in enumerate([0.2, 0.2, 0.6]):
        assert sliding_share_error(chosen, i, weight) < 0.01
    # A checkpoint of the new phase resumes the new phase, not the old one.
    again = MixtureSampler(annealing, seed=4)
    assert again.load_state_dict(json.loads(json.dumps(after.state_dict(n + 12_345))), n + 12_345) is False
    assert np.array_equal(again.locate(n + 12_345, 5000)[1], after.locate(n + 12_345, 5000)[1])


def test_dropped_source_keeps_its_position_for_a_later_phase():
    start = MixtureSampler(THREE, seed=9)
    code_before = source_stream(start, 2, 0, 10_000)
    without_code = MixtureSampler(THREE[:2], seed=9)
    without_code.load_state_dict(json.loads(json.dumps(start.state_dict(10_000))), 10_000)
    assert without_code.parked == {"code": {"windows": 300, "consumed": len(code_before)}}
    back = MixtureSampler(THREE, seed=9)
    back.load_state_dict(json.loads(json.dumps(without_code.state_dict(20_000))), 20_000)
    code_after = source_stream(back, 2, 20_000, 10_000)
    solo = MixtureSampler([MixtureSource("code", 300, 1.0)], seed=9)
    assert code_before + code_after == source_stream(solo, 0, 0, len(code_before) + len(code_after))


def test_states_that_cannot_continue_are_refused():
    state = MixtureSampler(THREE, seed=1).state_dict(500)
    with pytest.raises(MixtureError, match="seed=1"):
        MixtureSampler(THREE, seed=2).load_state_dict(state, 500)
    resized = [MixtureSource("zh", 4_000, 0.6), *THREE[1:]]
    with pytest.raises(MixtureError, match="'zh' was cut into 5000 windows"):
        MixtureSampler(resized, seed=1).load_state_dict(state, 500)
    with pytest.raises(MixtureError, match="weight"):
        MixtureSampler([MixtureSource("a", 10, -1.0)], seed=1)
    with pytest.raises(MixtureError, match="weight 0"):
        MixtureSampler([MixtureSource("a", 10, 0.0)], seed=1)
    with pytest.raises(MixtureError, match="differ"):
        MixtureSampler([MixtureSource("a", 10, 1.0), MixtureSource("a", 10, 1.0)], seed=1)


def test_a_query_far_into_a_run_costs_no_more_than_one_near_its_start():
    sampler = MixtureSampler(THREE, seed=1)
    sampler.locate(0, 64)  # first block and the sources' first permutations
    start = time.perf_counter()
    sampler.locate(10**12, 64)  # 10^12 windows in: one new block, one new permutation per source
    far = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(1000):  # micro-batches of 64 within cached blocks
        sampler.locate(10**12 + 64 * k, 64)
    per_batch = (time.perf_counter() - start) / 1000
    # generous bounds for a loaded 2-core machine; measured about 10 ms and 0.1 ms
    assert far < 0.5 and per_batch < 0.005, (far, per_batch)
