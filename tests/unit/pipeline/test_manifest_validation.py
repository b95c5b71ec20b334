"""A shard folder's manifest is validated where it is read (read_manifest -> check_manifest) and its shards where they
are opened (read_header), so every reader, from inspect to the training loader, gets either a folder it can index
without further checks or one ShardError line (issue 22): missing keys, wrong types, absurd numbers, deep nesting,
entries naming files outside the folder, shards that are symlinks, folders or FIFOs."""
import json
import os
import shutil

import numpy as np
import pytest

from gptstack.errors import ShardError
from model.data.batches import TokenBatches
from pipeline.shards import (ShardFolder, build_manifest, open_shard, read_manifest, shard_entry, write_manifest,
                             write_shard)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real folder: a val and a train shard of gpt2 ids, their manifest written by build_manifest."""
    folder = tmp_path_factory.mktemp("shards") / "good"
    folder.mkdir()
    entries = []
    for index, (split, size) in enumerate((("val", 300), ("train", 2000))):
        name = f"{split}_{index:06d}.bin"
        tokens = np.arange(size, dtype=np.uint16) % 50257
        entries.append(shard_entry(name, split, size, 3, write_shard(folder / name, tokens)))
    write_manifest(folder, build_manifest(entries, "gpt2", 50257, 50256, command="test"))
    return folder


def variant(good, tmp_path, change=None, raw=None):
    folder = tmp_path / "variant"
    shutil.copytree(good, folder)
    if raw is not None:
        (folder / "manifest.json").write_text(raw)
    if change is not None:
        manifest = json.loads((folder / "manifest.json").read_text())
        changed = change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest if changed is None else changed))
    return folder


def refusal(action) -> str:
    with pytest.raises(ShardError) as error:
        action()
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    return message


def entry(index, key, value=None, delete=False):
    def change(manifest):
        if delete:
            del manifest["shards"][index][key]
        else:
            manifest["shards"][index][key] = value
    return change


def top(key, value=None, delete=False):
    return lambda manifest: manifest.pop(key) and None if delete else manifest.__setitem__(key, value)


def test_the_good_folder_reads_and_loads(good):
    folder = ShardFolder(good)
    folder.verify(progress=False)
    assert [p.name for p in folder.paths("train")] == ["train_000001.bin"]
    TokenBatches(folder, "train", batch_size=2, seq_len=16, shuffle=True).next_batch()


@pytest.mark.parametrize("change, expected", [
    (entry(0, "tokens", delete=True), "shards[0].tokens is missing"),
    (entry(1, "sha256", delete=True), "shards[1].sha256 is missing"),
    (entry(0, "documents", delete=True), "shards[0].documents is missing"),
    (entry(0, "file", delete=True), "shards[0].file is missing"),
    (entry(0, "file", 5), "shards[0].file must be a string, not 5"),
    (entry(0, "tokens", "300"), "shards[0].tokens must be an integer, not '300'"),
    (entry(0, "tokens", 300.0), "shards[0].tokens must be an integer, not 300.0"),
    (entry(0, "tokens", -1), "shards[0].tokens must be 0 to 2,147,483,647, not -1"),
    (entry(0, "tokens", 10**30), "shards[0].tokens must be 0 to 2,147,483,647"),
    (entry(0, "documents", 301), "shards[0].documents must be 0 to 300"),
    (entry(0, "sha256", "abc"), "shards[0].sha256 'abc' is not a SHA-256 in hex"),
    (entry(0, "split", "test"), "shards[0].split is 'test', not one of train, val"),
    (entry(1, "file", "../other/x.bin"), "shards[1].file '../other/x.bin' is not the name of a .bin file inside"),
    (entry(1, "file", "/etc/x.bin"), "is not the name of a .bin file inside the folder"),
    (entry(1, "file", "sub/x.bin"), "is not the name of a .bin file inside the folder"),
    (entry(1, "file", ".."), "is not the name of a .bin file inside the folder"),
    (entry(1, "file", "manifest.json"), "is not the name of a .bin file inside the folder"),
    (entry(1, "file", "val_000000.bin"), "shards[1].file val_000000.bin is listed twice"),
    (lambda m: m["shards"].append([1]), "shards[2] must be an object, not [1]"),
    (top("shards", {}), "shards must be a list, not {}"),
    (top("shards", []), "lists no shard"),
    (top("shards", delete=True), "shards is missing"),
    (top("totals", []), "totals must be an object, not []"),
    (lambda m: m["totals"].__setitem__("tokens", 5), "totals.tokens is 5, but the shard entries add up to 2300"),
    (top("vocab_size", "x"), "vocab_size must be an integer, not 'x'"),
    (top("vocab_size", 10**30), "vocab_size must be 1 to 65,536"),  # ids are uint16
    (top("eot_token", 10**9), "eot_token must be 0 to 50,256"),
    (top("eot_token", delete=True), "eot_token is missing"),
    (top("dtype", "uint32"), "dtype is 'uint32'; this code reads uint16 shards only"),
    (top("tokenizer", 5), "tokenizer must be a string, not 5"),
    (top("tokenizer", delete=True), "tokenizer is missing"),
    (top("skipped", [1]), "skipped must be an object, not [1]"),
    (lambda m: m.__setitem__("skipped", {"corrupt_file": -2}), "skipped.corrupt_file must be at least 0"),
    (top("command", {"x": 1}), "command must be a string or null"),
    (top("version", 2), "unsupported manifest version 2"),
    (lambda m: [m], "not a gptstack-shards manifest"),
])
def test_manifest_fields_of_the_wrong_type_or_range_are_one_line(good, tmp_path, change, expected):
    folder = variant(good, tmp_path, change)
    message = refusal(lambda: read_manifest(folder))
    assert message.startswith(str(folder / "manifest.json")) and expected in message
    assert expected in refusal(lambda: ShardFolder(folder))  # the loader's one way in


@pytest.mark.parametrize("raw, expected", [
    ("[" * 100_000 + "]" * 100_000, "manifest is nested too deeply"),  # a RecursionError in Python's parser
    ('{"format": "gptstack-shards", "version": ' + "9" * 5000 + "}", "manifest is not valid JSON"),
    ('{"format": "gptstack-shards", "shards": [', "manifest is not valid JSON"),
    ("null", "not a gptstack-shards manifest"),
])
def test_unparsable_manifests_are_one_line(good, tmp_path, raw, expected):
    assert expected in refusal(lambda: read_manifest(variant(good, tmp_path, raw=raw)))


def test_numbers_that_are_not_json_are_refused(good, tmp_path):
    folder = variant(good, tmp_path)
    path = folder / "manifest.json"
    path.write_text(path.read_text().replace('"tokens": 300', '"tokens": NaN', 1))
    assert "NaN is not a JSON number" in refusal(lambda: read_manifest(folder))


@pytest.mark.parametrize("plant", ["symlink", "folder", "fifo"])
def test_a_shard_that_is_not_a_plain_file_of_the_folder_is_refused(good, tmp_path, plant):
    """A symlink passed inspect as ok and trained on whatever it pointed to; a folder or a FIFO was a traceback."""
    folder = variant(good, tmp_path)
    outside = tmp_path / "outside.bin"
    shutil.copy(folder / "train_000001.bin", outside)
    shard = folder / "train_000001.bin"
    shard.unlink()
    {"symlink": lambda: shard.symlink_to(outside), "folder": shard.mkdir, "fifo": lambda: os.mkfifo(shard)}[plant]()
    kind = {"symlink": "is a symbolic link", "folder": "is a folder", "fifo": "is not a plain file"}[plant]
    assert kind in refusal(lambda: open_shard(shard))
    assert kind in refusal(lambda: ShardFolder(folder).verify(progress=False))
    assert kind in refusal(lambda: TokenBatches(ShardFolder(folder), "train", batch_size=2, seq_len=16))


def test_fingerprint_is_unchanged_by_the_stricter_reader(good):
    """Checkpoints record the fingerprint: the same manifest must give the same one as before the checks."""
    import hashlib

    manifest = read_manifest(good)
    before = hashlib.sha256(repr([(e["file"], e.get("sha256", ""), e.get("tokens", 0))
                                  for e in manifest["shards"]]).encode()).hexdigest()[:16]
    assert ShardFolder(good).fingerprint() == before
