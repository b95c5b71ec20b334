"""A tokenizer folder holds plain files only: a symbolic link, a FIFO, a device or a sub-folder in it is refused in
one line when the folder is opened, and the copy that goes into shard folders and checkpoints (`copy_into`) never
follows a link, even one planted after the folder was opened (issue 22: a private mode-600 file linked into the
folder ended up in every checkpoint; a /dev/zero link was copied until the disk was full)."""
import json
import os
import shutil
from pathlib import Path

import pytest

from gptstack.errors import InputError
from pipeline.read.corpora import sample_corpus_path
from pipeline.tokenizer import get_tokenizer
from pipeline.tokenizer.cli import main as tokenizer_main
from pipeline.tokenizer.folder import META_FILE, load_tokenizer_folder
from pipeline.tokenizer.train import TrainSettings, train_tokenizer

SECRET = "-----BEGIN PRIVATE KEY----- not for the shards"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real (small) tokenizer folder, trained on the sample corpus's first Wikipedia lead sections."""
    entries = list(json.loads(sample_corpus_path().read_text()).values())[:300]
    folder = tmp_path_factory.mktemp("tokenizers") / "small"
    train_tokenizer([e["extract"] for e in entries if e.get("extract")], TrainSettings(300), folder, "test",
                    progress=False)
    return folder


@pytest.fixture
def folder(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "tok"))


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "private.key"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def plant(folder: Path, kind: str, secret: Path) -> str:
    """Put one entry that is not a plain file into `folder`; return its name."""
    if kind == "link to a private file":
        os.symlink(secret, folder / "notes.txt")
        return "notes.txt"
    if kind == "link to /dev/zero":
        os.symlink("/dev/zero", folder / "zeros.bin")
        return "zeros.bin"
    if kind == "FIFO":
        os.mkfifo(folder / "pipe")
        return "pipe"
    if kind == "link replacing a file of the folder":  # the metadata itself, pointing at an identical copy
        outside = secret.with_name("meta-copy.json")
        shutil.copyfile(folder / META_FILE, outside)
        (folder / META_FILE).unlink()
        os.symlink(outside, folder / META_FILE)
        return META_FILE
    (folder / "extra").mkdir()
    (folder / "extra" / "x.txt").write_text("x")
    return "extra"


KINDS = ["link to a private file", "link to /dev/zero", "FIFO", "link replacing a file of the folder", "sub-folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_holding_anything_but_plain_files_is_refused_in_one_line(folder, secret, kind, capsys):
    name = plant(folder, kind, secret)
    with pytest.raises(InputError) as refused:
        get_tokenizer(str(folder))
    message = str(refused.value)
    assert "\n" not in message and str(folder) in message and name in message
    with pytest.raises(SystemExit) as exited:  # the command line: `error: ...`, exit 2
        tokenizer_main(["show", str(folder), "--text", "hello"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]


@pytest.mark.parametrize("kind", ["link to a private file", "link to /dev/zero", "FIFO", "sub-folder"])
def test_copy_into_refuses_an_entry_planted_after_the_folder_was_opened(folder, secret, tmp_path, kind):
    tokenizer = get_tokenizer(str(folder))  # verified while clean
    name = plant(folder, kind, secret)
    destination = tmp_path / "shards"
    with pytest.raises(InputError, match=name):
        tokenizer.copy_into(destination)
    assert sorted(os.listdir(destination)) == []  # no copy, no temporary folder left behind
    for path in tmp_path.rglob("*"):  # the private text went nowhere
        if path.is_file() and not path.is_symlink() and path != secret:
            assert SECRET not in path.read_text(errors="replace")


def test_copy_into_copies_plain_files_that_verify(folder, tmp_path):
    tokenizer = get_tokenizer(str(folder))
    copy = tokenizer.copy_into(tmp_path / "checkpoint" / "model")
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert all(p.is_file() and not p.is_symlink() for p in copy.iterdir())
    assert load_tokenizer_folder(copy).sha256 == tokenizer.sha256
    again = tokenizer.copy_into(tmp_path / "checkpoint" / "model")  # replaces the older copy
    assert load_tokenizer_folder(again).sha256 == tokenizer.sha256
    assert sorted(os.listdir(tmp_path / "checkpoint" / "model")) == ["tokenizer"]


def test_hugging_face_files_replace_a_link_in_the_export_instead_of_writing_through_it(folder, secret, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    os.symlink(secret, export / "tokenizer.json")
    os.symlink(secret, export / "tokenizer_config.json")
    assert get_tokenizer(str(folder)).write_hf_files(export, block_size=64)
    assert secret.read_text() == SECRET  # the link's target is untouched
    assert not (export / "tokenizer.json").is_symlink() and not (export / "tokenizer_config.json").is_symlink()
    assert json.loads((export / "tokenizer_config.json").read_text())["model_max_length"] == 64
