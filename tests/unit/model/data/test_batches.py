"""TokenBatches: windows, the one global stream shared by all ranks, and resume with a different world size."""
import numpy as np
import pytest
import torch

from model.data.batches import TokenBatches
from gptstack.errors import ShardError
from pipeline.shards import build_manifest, shard_entry, shard_name, write_manifest, write_shard

SEQ_LEN = 16
SHARD_SIZES = [1000, 777, 1500]  # windows: 62 + 48 + 93 = 203


@pytest.fixture()
def shard_dir(tmp_path):
    """Three train shards and one val shard whose token values are their global position (all distinct)."""
    entries, position = [], 0
    for index, size in enumerate([300] + SHARD_SIZES):
        split = "val" if index == 0 else "train"
        name = shard_name(split, index)
        digest = write_shard(tmp_path / name, np.arange(position, position + size, dtype=np.uint16))
        entries.append(shard_entry(name, split, size, 0, digest))
        position += size
    write_manifest(tmp_path, build_manifest(entries, "gpt2", 50257, 50256, command="tests/test_data_loader.py"))
    return tmp_path


def window_ids(x: torch.Tensor) -> list[int]:
    return x[:, 0].tolist()  # first token identifies the window: values are unique positions


def test_batches_are_shifted_windows_inside_one_shard(shard_dir):
    loader = TokenBatches(shard_dir, batch_size=4, seq_len=SEQ_LEN, shuffle=False)
    assert loader.windows_per_epoch == sum((n - 1) // SEQ_LEN for n in SHARD_SIZES)
    seen = []
    for _ in range(loader.windows_per_epoch // 4):
        x, y = loader.next_batch()
        assert x.shape == y.shape == (4, SEQ_LEN) and x.dtype == y.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])
        assert torch.equal(y - x, torch.ones_like(x))  # consecutive positions: never crosses a shard end
        seen += window_ids(x)
    # windows are non-overlapping and start at multiples of seq_len inside their shard
    starts_of_first_shard = [s for s in seen if s < 300 + 1000]
    assert starts_of_first_shard[:3] == [300, 316, 332]


def test_shuffled_epoch_visits_every_window_once_and_epochs_differ(shard_dir):
    loader = TokenBatches(shard_dir, batch_size=7, seq_len=SEQ_LEN, seed=5)
    n = loader.windows_per_epoch
    stream = [int(loader.window(k)[0]) for k in range(2 * n)]
    assert len(set(stream[:n])) == n and set(stream[:n]) == set(stream[n:])
    assert stream[:n] != stream[n:]
    assert stream[:n] != sorted(stream[:n])
    other_seed = TokenBatches(shard_dir, batch_size=7, seq_len=SEQ_LEN, seed=6)
    assert [int(other_seed.window(k)[0]) for k in range(n)] != stream[:n]


def collect(loaders, steps):
    """Run `steps` synchronized steps on all ranks; return the windows in stream order (rank 0 first)."""
    order = []
    for _ in range(steps):
        for loader in loaders:
            order += window_ids(loader.next_batch()[0])
    return order


def test_two_ranks_consume_the_same_stream_as_one_rank(shard_dir):
    ranks = [TokenBatches(shard_dir, batch_size=3, seq_len=SEQ_LEN, rank=r, world_size=2) for r in range(2)]
    single = TokenBatches(shard_dir, batch_size=6, seq_len=SEQ_LEN)
    two = collect(ranks, 10)
    assert two == collect([single], 10)
    assert len(set(two)) == len(two)  # distinct windows on every rank
    assert ranks[0].state_dict() == ranks[1].state_dict() == single.state_dict()


def test_resume_with_another_world_size_neither_repeats_nor_skips(shard_dir):
    n = TokenBatches(shard_dir, seq_len=SEQ_LEN).windows_per_epoch
    reference = collect([TokenBatches(shard_dir, batch_size=1, seq_len=SEQ_LEN)], 2 * n)

    ranks = [TokenBatches(shard_dir, batch_size=4, seq_len=SEQ_LEN, rank=r, world_size=2) for r in range(2)]
    stream = collect(ranks, 11)  # 88 windows
    state = ranks[0].state_dict()
    assert state["samples_consumed"] == 88

    resumed = [TokenBatches(shard_dir, batch_size=5, seq_len=SEQ_LEN, rank=r, world_size=3) for r in range(3)]
    for loader in resumed:
        loader.load_state_dict(state)
    stream += collect(resumed, 21)  # 315 more windows: crosses into the second epoch
    assert stream == reference[:len(stream)]
    assert sorted(stream[:n]) == sorted(set(stream[:n]))  # first epoch: each window exactly once


def test_state_of_another_stream_is_refused(shard_dir):
    loader = TokenBatches(shard_dir, seq_len=SEQ_LEN, seed=1)
    state = loader.state_dict()
    with pytest.raises(ShardError, match="seed=1"):
        TokenBatches(shard_dir, seq_len=SEQ_LEN, seed=2).load_state_dict(state)
    with pytest.raises(ShardError, match="seq_len=16"):
        TokenBatches(shard_dir, seq_len=32, seed=1).load_state_dict(state)


def test_validation_reads_from_the_start(shard_dir):
    val = TokenBatches(shard_dir, "val", batch_size=2, seq_len=SEQ_LEN, shuffle=False)
    assert val.windows_per_epoch == (300 - 1) // SEQ_LEN
    first, _ = val.next_batch()
    assert window_ids(first) == [0, 16]
    val.next_batch()
    val.reset()
    assert torch.equal(val.next_batch()[0], first)


def test_unusable_inputs_are_reported(shard_dir, tmp_path_factory):
    with pytest.raises(ShardError, match="fewer than seq_len"):
        TokenBatches(shard_dir, "val", seq_len=512)
    with pytest.raises(ShardError, match="manifest.json: missing"):
        TokenBatches(tmp_path_factory.mktemp("empty"))
    (shard_dir / "train_000002.bin").write_bytes(b"short")
    with pytest.raises(ShardError, match="train_000002.bin"):
        TokenBatches(shard_dir, seq_len=SEQ_LEN)
