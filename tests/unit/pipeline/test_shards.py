"""The shard format: round trip, llm.c compatibility, and rejection of damaged files."""
import json

import numpy as np
import pytest

from gptstack.errors import ShardError
from pipeline.shards import (HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION, build_manifest, file_sha256, open_shard,
                             provenance, read_manifest, shard_entry, shard_paths, write_manifest, write_shard)


def read_llmc_style(path):
    """An independent reader written the way llm.c's dataloader reads a shard: 256 int32, then uint16 tokens."""
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype=np.int32)
    assert header[0] == 20240520, "magic number mismatch"
    assert header[1] == 1, "unsupported version"
    num_tokens = int(header[2])
    tokens = np.memmap(path, dtype=np.uint16, mode="r", offset=256 * 4)
    assert len(tokens) == num_tokens
    return tokens


def test_write_and_open_round_trip(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50257, size=10_001).astype(np.uint16)
    digest = write_shard(tmp_path / "train_000001.bin", tokens)
    path = tmp_path / "train_000001.bin"
    assert path.stat().st_size == HEADER_BYTES + 2 * len(tokens)
    assert digest == file_sha256(path)
    np.testing.assert_array_equal(open_shard(path), tokens)
    np.testing.assert_array_equal(read_llmc_style(path), tokens)
    assert [p.name for p in tmp_path.iterdir()] == ["train_000001.bin"]  # no temp file left behind


def test_chunks_are_written_in_order(tmp_path):
    chunks = [np.arange(5, dtype=np.uint16), np.arange(100, 103, dtype=np.int64), np.array([], dtype=np.uint16),
              np.array([7], dtype=np.int32)]
    write_shard(tmp_path / "s.bin", chunks)
    assert open_shard(tmp_path / "s.bin").tolist() == [0, 1, 2, 3, 4, 100, 101, 102, 7]


def test_header_fields(tmp_path):
    write_shard(tmp_path / "s.bin", np.arange(7, dtype=np.uint16))
    header = np.fromfile(tmp_path / "s.bin", dtype="<i4", count=256)
    assert header[:3].tolist() == [SHARD_MAGIC, SHARD_VERSION, 7] and not header[3:].any()


def test_ids_beyond_uint16_are_refused(tmp_path):
    with pytest.raises(ShardError, match="outside 0..65535"):
        write_shard(tmp_path / "s.bin", np.array([1, 70000]))
    assert list(tmp_path.iterdir()) == []


def test_truncated_shard_is_rejected(tmp_path):
    path = tmp_path / "train_000001.bin"
    write_shard(path, np.arange(1000, dtype=np.uint16))
    with open(path, "r+b") as f:
        f.truncate(HEADER_BYTES + 2 * 999)
    with pytest.raises(ShardError, match="train_000001.bin.*truncated"):
        open_shard(path)
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ShardError, match="shorter than the 1024-byte"):
        open_shard(path)


def test_wrong_magic_and_version_are_rejected(tmp_path):
    path = tmp_path / "s.bin"
    write_shard(path, np.arange(10, dtype=np.uint16))
    data = bytearray(path.read_bytes())
    data[0:4] = np.int32(12345).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="s.bin: bad magic number 12345"):
        open_shard(path)
    data[0:4] = np.int32(SHARD_MAGIC).tobytes()
    data[4:8] = np.int32(7).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="unsupported shard version 7"):
        open_shard(path)
    with pytest.raises(ShardError, match="cannot open shard"):
        open_shard(tmp_path / "missing.bin")


def test_failed_write_leaves_earlier_file_and_no_temp(tmp_path):
    # The target is a folder, so the final rename fails after every byte was written: nothing may be left behind.
    (tmp_path / "blocked.bin").mkdir()
    with pytest.raises(OSError):
        write_shard(tmp_path / "blocked.bin", np.arange(100, dtype=np.uint16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.bin"]
    # Overwriting an existing shard replaces it whole.
    write_shard(tmp_path / "a.bin", np.arange(10, dtype=np.uint16))
    write_shard(tmp_path / "a.bin", np.arange(3, dtype=np.uint16))
    assert open_shard(tmp_path / "a.bin").tolist() == [0, 1, 2]


def test_manifest_lists_shards_per_split(tmp_path):
    manifest = build_manifest([shard_entry(name, split, 1, 1, "0" * 64) for name, split in (  # every field is checked
        ("val_000000.bin", "val"), ("train_000001.bin", "train"), ("train_000002.bin", "train"))], "gpt2", 50257, 50256)
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert [p.name for p in shard_paths(tmp_path, "train")] == ["train_000001.bin", "train_000002.bin"]
    assert [p.name for p in shard_paths(tmp_path, "val")] == ["val_000000.bin"]
    with pytest.raises(ShardError, match="unknown split"):
        shard_paths(tmp_path, "test")


def test_built_manifest_counts_each_split_and_reads_back(tmp_path):
    entries = [shard_entry("val_000000.bin", "val", 10, 2, write_shard(tmp_path / "val_000000.bin", np.arange(10))),
               shard_entry("train_000001.bin", "train", 30, 5, "0" * 64),
               shard_entry("train_000002.bin", "train", 7, 1, "1" * 64)]
    manifest = build_manifest(entries, "gpt2", 50257, 50256, skipped={}, **provenance("python -m test"))
    assert list(manifest)[:8] == ["format", "version", "tokenizer", "vocab_size", "eot_token", "dtype", "shards",
                                  "totals"]
    assert manifest["totals"] == {"shards": 3, "documents": 8, "tokens": 47, "val_tokens": 10, "val_documents": 2,
                                  "train_tokens": 37, "train_documents": 6}
    assert manifest["command"] == "python -m test" and {"numpy", "datatrove"} <= set(manifest["versions"])
    assert entries[0]["sha256"] == file_sha256(tmp_path / "val_000000.bin")
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    with pytest.raises(ShardError, match=r"shards\[0\]\.split is 'test'"):
        build_manifest([shard_entry("x.bin", "test", 1, 1, "")], "gpt2", 50257, 50256)


def test_bad_or_missing_manifest_is_rejected(tmp_path):
    with pytest.raises(ShardError, match="manifest.json: missing"):
        read_manifest(tmp_path)
    with pytest.raises(ShardError, match="no such shard folder"):
        read_manifest(tmp_path / "nope")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="manifest is not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ShardError, match="not a gptstack-shards manifest"):
        read_manifest(tmp_path)
