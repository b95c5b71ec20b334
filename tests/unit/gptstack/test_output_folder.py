"""claim_output_folder, the one output-folder rule: which folders it accepts, what it refuses, what --force says."""
import json

import pytest

from gptstack.output_folder import MARKER, OutputFolderError, claim_output_folder

WRITES = ("logs", "manifest.json", "*_[0-9][0-9][0-9][0-9][0-9][0-9].bin")


def claim(path, force=False, **kwargs):
    return claim_output_folder(path, "test.command", force, writes=WRITES, **kwargs)


def test_a_new_or_empty_folder_is_claimed_and_marked_before_anything_else(tmp_path):
    folder = claim(tmp_path / "new" / "out")
    assert [p.name for p in folder.path.iterdir()] == [MARKER]
    folder.record(["logs"])
    assert json.loads((folder.path / MARKER).read_text()) == {"format": "gptstack-output",
                                                             "command": "test.command", "wrote": ["logs"]}
    (tmp_path / "empty").mkdir()
    assert claim(tmp_path / "empty").owned == set()
    checked = claim(tmp_path / "later", write=False)  # checked only: nothing on disk until the first record
    assert not checked.path.exists()


def test_a_folder_of_the_users_is_refused_untouched_and_force_says_what_it_replaces(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mine.log").write_text("mine")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"--output .* is not empty and test.command did not write it .*"
                                                r"replacing logs\)"):
        claim(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "notes.txt"]
    folder = claim(tmp_path, force=True)
    assert capsys.readouterr().err == f"--force: test.command writes into {tmp_path}, replacing logs\n"
    assert folder.owns("logs") and not folder.owns("notes.txt")


def test_its_own_folder_is_accepted_but_not_a_name_it_never_wrote_there(tmp_path):
    claim(tmp_path).record(["manifest.json", "train_000001.bin"])
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("a file of the user's, beside ours")
    assert claim(tmp_path).owns("train_000001.bin")
    (tmp_path / "logs").mkdir()  # a name the command writes, but the user's here
    with pytest.raises(OutputFolderError, match="holds logs, which test.command did not write"):
        claim(tmp_path)


@pytest.mark.parametrize("marker", [
    b"not json", b"[]", b'{"format": "gptstack-output", "command": "test.command", "wrote": ["../x"]}',
    b'{"format": "gptstack-output", "command": "test.command"}', b"[" * 100_000])
def test_a_marker_that_is_not_ours_is_refused(tmp_path, marker):
    (tmp_path / MARKER).write_bytes(marker)
    with pytest.raises(OutputFolderError, match=f"its {MARKER} is"):
        claim(tmp_path)


def test_a_planted_wildcard_marker_owns_only_a_name_that_is_literally_a_star(tmp_path):
    (tmp_path / MARKER).write_text(json.dumps({"format": "gptstack-output", "command": "test.command",
                                               "wrote": ["*"]}))
    (tmp_path / "logs").mkdir()
    with pytest.raises(OutputFolderError, match="holds logs"):
        claim(tmp_path)


def test_another_commands_folder_a_file_and_a_legacy_folder(tmp_path):
    (tmp_path / "other").mkdir()
    claim_output_folder(tmp_path / "other", "other.command", False)
    with pytest.raises(OutputFolderError, match="was written by other.command, not test.command"):
        claim(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputFolderError, match="exists and is not a folder"):
        claim(tmp_path / "file", force=True)  # --force never replaces a file by a folder
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    (old / "notes.txt").write_text("x")
    folder = claim(old, legacy=lambda path: (path / "manifest.json").is_file())
    assert folder.owns("manifest.json") and not folder.owns("notes.txt")


def test_an_unwritable_place_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputFolderError, match="not writable"):
        claim(tmp_path / "file" / "out")


def test_a_callers_conflict_refuses_even_its_own_folder_and_force_replaces_all_it_writes(tmp_path, capsys):
    claim(tmp_path).record(["manifest.json"])
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(OutputFolderError, match="shards of another tokenizer"):
        claim(tmp_path, conflict="shards of another tokenizer")
    claim(tmp_path, force=True, conflict="shards of another tokenizer")
    assert capsys.readouterr().err == f"--force: test.command writes into {tmp_path}, replacing manifest.json\n"
