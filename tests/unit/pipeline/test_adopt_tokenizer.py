"""`adopt --tokenizer DIR` pins the tokenizer as prepare does: its sha256 in the manifest and a copy in the shard
folder's tokenizer/, which inspect and the trainer read (verified), so swapping the original folder later changes
nothing (issue 22: the path was recorded as typed, and a swapped folder changed what inspect decoded, exit 0)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gptstack.errors import GPTStackError, InputError
from pipeline.adopt import adopt
from pipeline.inspect import main as inspect_main
from pipeline.shards import MANIFEST_NAME, ShardFolder, write_shard
from pipeline.tokenizer import COPY_DIR, get_tokenizer
from tests.support.tokenizers import train_small

TEXT = "The quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {"mine": train_small(root / "mine", 300), "other": train_small(root / "other", 280)}


@pytest.fixture
def llmc(tokenizers, tmp_path) -> tuple[Path, Path]:
    """llm.c-style shards (no manifest) of text tokenized with `mine`, and the folder `mine` as the user has it."""
    original = Path(shutil.copytree(tokenizers["mine"], tmp_path / "tok"))
    tokenizer = get_tokenizer(str(original))
    ids = [tokenizer.eot_token, *tokenizer.encode(TEXT)]
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("data_val_000000.bin", "data_train_000001.bin"):
        write_shard(folder / name, np.array(ids, dtype=np.uint16))
    return folder, original


def test_adopt_pins_a_tokenizer_folder_and_a_swapped_original_changes_nothing(llmc, tokenizers, capsys):
    folder, original = llmc
    adopt(folder, str(original))
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["tokenizer_sha256"] == get_tokenizer(str(original)).sha256
    assert get_tokenizer(str(folder / COPY_DIR)).sha256 == manifest["tokenizer_sha256"]  # the copy
    decoded = ShardFolder(folder).tokenizer.decode(get_tokenizer(str(original)).encode(TEXT))

    shutil.rmtree(original)  # the user's folder is swapped for another tokenizer under the same path
    shutil.copytree(tokenizers["other"], original)
    assert ShardFolder(folder).tokenizer.sha256 == manifest["tokenizer_sha256"]
    inspect_main([str(folder), "--tokens", "12"])
    assert "<|endoftext|>The quick brown" in capsys.readouterr().out  # inspect still decodes the shards' own text
    assert ShardFolder(folder).tokenizer.decode(get_tokenizer(str(tokenizers["mine"])).encode(TEXT)) == decoded


def test_a_swapped_copy_in_the_shard_folder_is_refused(llmc, tokenizers):
    folder, original = llmc
    adopt(folder, str(original))
    shutil.rmtree(folder / COPY_DIR)
    shutil.copytree(tokenizers["other"], folder / COPY_DIR)
    with pytest.raises(GPTStackError, match="sha256"):
        ShardFolder(folder).tokenizer.decode([1, 2])


def test_adopt_does_not_replace_a_tokenizer_folder_it_did_not_write(llmc, tokenizers):
    folder, original = llmc
    shutil.copytree(tokenizers["other"], folder / COPY_DIR)  # the user's own folder of that name
    with pytest.raises(InputError, match="not a copy of --tokenizer"):
        adopt(folder, str(original))
    assert not (folder / MANIFEST_NAME).exists()
    assert get_tokenizer(str(folder / COPY_DIR)).sha256 == get_tokenizer(str(tokenizers["other"])).sha256
