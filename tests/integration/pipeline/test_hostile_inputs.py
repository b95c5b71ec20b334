"""Hostile inputs to the real commands (issue 22): a tokenizer folder, a manifest, a shard folder to adopt, a seed and
a HellaSwag file that are wrong each give exactly one `error:` line and exit code 2, and nothing is written: no
output folder appears, no manifest is changed. The loaders' cases one by one are in the unit tests
(tests/unit/pipeline/tokenizer/test_folder_validation.py, tests/unit/pipeline/test_manifest_validation.py,
tests/unit/model/test_hellaswag_file.py); these run the commands a user types."""
import base64
import hashlib
import json
import shutil

import pytest

from pipeline.tokenizer.folder import META_FILE, RANKS_FILE, write_tokenizer_folder
from pipeline.tokenizer.train import PATTERNS
from tests.support.faults import assert_one_line_error, python_module, tree_digest
from tests.support.train import TINY, make_shards


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    ranks = {bytes([byte]): byte for byte in range(256)} | {b"th": 256, b"the": 257, b" the": 258}
    return write_tokenizer_folder(tmp_path_factory.mktemp("tok") / "tok", ranks, PATTERNS["gpt4"], "gpt4",
                                  {"name": "test"}, {"source": "tests"})


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards") / "data", train_shards=1)


def rehashed(folder, change_meta=None, ranks_text=None):
    """`folder` changed as a hostile editor would: the data files' sha256 recorded again in the metadata."""
    if ranks_text is not None:
        (folder / RANKS_FILE).write_text(ranks_text)
    meta = json.loads((folder / META_FILE).read_text())
    meta["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in meta["files"]}
    if change_meta:
        change_meta(meta)
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def test_tokenizer_show_refuses_metadata_of_the_wrong_type(tokenizer, tmp_path):
    folder = rehashed(shutil.copytree(tokenizer, tmp_path / "tok"), lambda m: m.__setitem__("vocab_size", "267"))
    assert_one_line_error(python_module("pipeline.tokenizer", "show", folder), "vocab_size must be an integer")
    folder = rehashed(folder, lambda m: m.update(vocab_size=267, pattern="(unclosed"))  # an invalid split regex
    assert_one_line_error(python_module("pipeline.tokenizer", "show", folder), "pattern is not a usable split")


def test_prepare_refuses_ranks_without_byte_tokens_before_any_stage(tokenizer, tmp_path):
    """Accepted before, then a Rust panic after every stage had run, with a message saying a rerun would resume."""
    folder = shutil.copytree(tokenizer, tmp_path / "tok")
    lines = [line for line in (folder / RANKS_FILE).read_text().splitlines()
             if base64.b64decode(line.split()[0]) not in (b"e", b"\xff")]
    text = "".join(f"{line.split()[0]} {rank}\n" for rank, line in enumerate(lines))

    def shift(meta):
        meta["vocab_size"] -= 2
        meta["eot_token"] -= 2
        meta["special_tokens"] = {name: token_id - 2 for name, token_id in meta["special_tokens"].items()}

    rehashed(folder, shift, text)
    out = tmp_path / "out"
    result = python_module("pipeline.prepare", "--corpus", "sample", "--limit", "20", "--tokenizer", folder,
                           "--output", out)
    assert_one_line_error(result, str(folder / RANKS_FILE), "2 of the 256 single-byte tokens are missing (0x65, 0xff)")
    assert not out.exists()  # refused before anything ran or was written
    assert "resume" not in result.stderr


@pytest.mark.parametrize("plant, fragment", [
    ("outside", "shards[1].file '../other/val_000000.bin' is not the name of a .bin file inside the folder"),
    ("deep", "manifest is nested too deeply"),
    ("missing_key", "shards[0].tokens is missing"),
    ("symlink", "is a symbolic link; a shard must be a plain file inside its folder"),
])
def test_inspect_refuses_a_hostile_manifest_and_changes_nothing(shards, tmp_path, plant, fragment):
    """A manifest entry `../other/x.bin` or a symlinked shard passed inspect as "ok"; 100,000 levels of nesting and a
    missing key were tracebacks."""
    folder = shutil.copytree(shards, tmp_path / "data")
    other = shutil.copytree(shards, tmp_path / "other")
    manifest = json.loads((folder / "manifest.json").read_text())
    if plant == "outside":
        manifest["shards"][1]["file"] = "../other/val_000000.bin"
        manifest["shards"][1]["sha256"] = manifest["shards"][0]["sha256"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif plant == "deep":
        (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    elif plant == "missing_key":
        del manifest["shards"][0]["tokens"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        (folder / "train_000001.bin").unlink()
        (folder / "train_000001.bin").symlink_to(other / "train_000001.bin")
    before = tree_digest(folder)
    assert_one_line_error(python_module("pipeline.inspect", folder), fragment)
    assert tree_digest(folder) == before


def test_adopt_refuses_a_folder_named_like_a_shard(shards, tmp_path):
    folder = tmp_path / "llmc"
    folder.mkdir()
    shutil.copy(shards / "val_000000.bin", folder)
    (folder / "train_000001.bin").mkdir()  # was an IsADirectoryError traceback
    assert_one_line_error(python_module("pipeline.adopt", folder), "train_000001.bin: is a folder")
    assert not (folder / "manifest.json").exists()


@pytest.mark.parametrize("command", [
    ["pipeline.tokenizer", "train", "--corpus", "sample", "--vocab-size", "300"],
    ["pipeline.prepare", "--corpus", "sample", "--limit", "20"],
    ["pipeline.prepare", "--corpus", "sample", "--limit", "20", "--tokenizer", "train", "--vocab-size", "300"],
])
@pytest.mark.parametrize("seed", [-1, 2**70])
def test_seeds_out_of_range_are_refused_by_the_parser(tmp_path, command, seed):
    """2**70 was an OverflowError after the shuffle stage (tokenizer training keys its hash with 8 bytes)."""
    out = tmp_path / "out"
    result = python_module(*command, f"--seed={seed}", "--output", out, timeout=120)
    assert_one_line_error(result, f"argument --seed: {seed} is outside 0..{2**63 - 1}")
    assert not out.exists()


def test_train_refuses_a_bad_hellaswag_file_before_the_run_folder(shards, tmp_path):
    evaluation = tmp_path / "hellaswag_val.jsonl"
    evaluation.write_text(json.dumps({"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 0}) + "\n"
                          + json.dumps({"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 7}) + "\n")
    run = tmp_path / "run"
    result = python_module("model.train", *TINY, "--data", shards, "--run-dir", run, "--max-steps", "2",
                           "--set", f"eval.hellaswag={evaluation}")
    assert_one_line_error(result, f"{evaluation}:2: label must be 0, 1, 2 or 3, not 7")
    assert not run.exists()
