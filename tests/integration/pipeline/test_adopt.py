"""`python -m pipeline.adopt`: a folder of llm.c / modded-nanogpt shards (no manifest.json) becomes one that
inspect and the trainer read; a damaged or misnamed shard is one `error:` line and nothing is written."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from model.data.batches import TokenBatches
from pipeline.shards import HEADER_BYTES, MANIFEST_NAME, file_sha256, open_shard, write_shard
from pipeline.tokenizer import get_tokenizer


@pytest.fixture(scope="module")
def llmc_folder(tmp_path_factory, shared_data):
    """Real web text tokenized the way llm.c's dev/data/fineweb.py does (end-of-text *before* each document),
    written by the project's own shard writer under llm.c's names, and no manifest."""
    encoding = get_tokenizer("gpt2").encoding
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:60]
    documents = [[encoding.eot_token, *encoding.encode_ordinary(json.loads(line)["text"])] for line in lines]
    folder = tmp_path_factory.mktemp("llmc") / "edu_fineweb"
    folder.mkdir()
    for name, docs in (("edu_fineweb_val_000000.bin", documents[:10]), ("edu_fineweb_train_000001.bin",
                       documents[10:35]), ("edu_fineweb_train_000002.bin", documents[35:])):
        write_shard(folder / name, np.concatenate([np.array(d, dtype=np.uint16) for d in docs]))
    return folder


def adopt(folder, *extra):
    return subprocess.run([sys.executable, "-m", "pipeline.adopt", str(folder), *extra], capture_output=True,
                          text=True, timeout=300)


def test_adopted_folder_is_read_by_inspect_and_the_loader(llmc_folder, tmp_path):
    folder = shutil.copytree(llmc_folder, tmp_path / "shards")
    result = adopt(folder)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert [(e["file"], e["split"]) for e in manifest["shards"]] == [
        ("edu_fineweb_val_000000.bin", "val"), ("edu_fineweb_train_000001.bin", "train"),
        ("edu_fineweb_train_000002.bin", "train")]
    eot = get_tokenizer("gpt2").encoding.eot_token
    for entry in manifest["shards"]:
        tokens = open_shard(folder / entry["file"])
        assert entry["tokens"] == len(tokens)
        assert entry["sha256"] == file_sha256(folder / entry["file"])
        assert entry["documents"] == int((tokens == eot).sum())
    assert manifest["totals"]["documents"] == 60
    assert (manifest["tokenizer"], manifest["vocab_size"], manifest["eot_token"]) == ("gpt2", 50257, eot)

    inspected = subprocess.run([sys.executable, "-m", "pipeline.inspect", str(folder), "--tokens", "20"],
                               capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 0, inspected.stderr
    x, y = TokenBatches(folder, "train", batch_size=2, seq_len=64).next_batch()
    assert x.shape == (2, 64) and (x[:, 1:] == y[:, :-1]).all()

    again = adopt(folder)  # a folder with a manifest needs no adopting
    assert again.returncode == 2 and again.stderr.startswith("error:") and "already there" in again.stderr


@pytest.mark.parametrize("damage, expected", [
    ("magic", "bad magic number"),
    ("truncate", "truncated or corrupt"),
    ("name", "cannot tell its split"),
    ("token", "outside the tokenizer"),
])
def test_bad_shard_is_one_error_line_and_no_manifest(llmc_folder, tmp_path, damage, expected):
    folder = shutil.copytree(llmc_folder, tmp_path / "shards")
    shard = folder / "edu_fineweb_train_000002.bin"
    data = bytearray(shard.read_bytes())
    if damage == "magic":
        data[0:4] = np.int32(20240521).tobytes()
    elif damage == "truncate":
        data = data[:-100]
    elif damage == "token":
        data[HEADER_BYTES:HEADER_BYTES + 2] = np.uint16(60000).tobytes()  # no such id in GPT-2's 50,257
    shard.write_bytes(bytes(data))
    if damage == "name":
        shard.rename(folder / "edu_fineweb_000002.bin")
    result = adopt(folder)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:"), result.stderr
    assert expected in result.stderr and "000002.bin" in result.stderr
    assert not (folder / MANIFEST_NAME).exists()
