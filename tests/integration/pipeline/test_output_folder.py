"""The output-folder rule for prepare and clean (gptstack/output_folder.py): a folder they did not write is refused in
one line with every file left byte-identical; --force writes into it, says what it replaces and keeps the rest;
their own folders (marker, or an older version's output without one) are rerun into as before."""
import json

import pytest

from gptstack.output_folder import MARKER
from pipeline.shards import read_manifest
from tests.support.faults import assert_one_line_error, python_module, tree_digest

PREPARE = ("pipeline.prepare", "--corpus", "sample", "--limit", "20", "--val-tokens", "0")


def users_folder(folder):
    """What the tester planted: names prepare and clean write, holding the user's own files, and one beside them."""
    for relative, text in {"logs/train.log": "my log\n", "tokenizer/notes.txt": "mine\n",
                           "cleaning/report.md": "# my cleaning notes\n", "kept/mine.jsonl": '{"text": "mine"}\n',
                           "report.md": "# my report\n", "notes.txt": "keep me\n"}.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return tree_digest(folder)


def test_prepare_refuses_a_folder_it_did_not_write_and_force_replaces_only_its_names(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    before = users_folder(out)
    refused = python_module(*PREPARE, "--output", out)
    line = assert_one_line_error(refused, f"--output {out}", "--force")
    assert "pipeline.prepare did not write it" in line and "cleaning, logs, tokenizer" in line
    assert tree_digest(out) == before and not (out / MARKER).exists()  # nothing written, nothing deleted

    forced = python_module(*PREPARE, "--output", out, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    said = [line for line in forced.stderr.splitlines() if line.startswith("--force:")]
    assert said == [f"--force: pipeline.prepare writes into {out}, replacing cleaning, logs, tokenizer"]
    read_manifest(out)
    after = tree_digest(out)
    for untouched in ("notes.txt", "kept/mine.jsonl", "report.md"):  # not names prepare writes: kept as they were
        assert after[untouched] == before[untouched], untouched
    assert "logs/train.log" not in after and "tokenizer/notes.txt" not in after  # replaced, as announced


def test_prepare_reruns_into_its_own_folder_and_refuses_what_it_did_not_write_there(tmp_path):
    out = tmp_path / "shards"
    first = python_module(*PREPARE, "--output", out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((out / MARKER).read_text())["command"] == "pipeline.prepare"
    (out / MARKER).unlink()  # as an older version left it: no marker, a valid manifest.json of ours
    again = python_module(*PREPARE, "--output", out)
    assert again.returncode == 0 and "--force" not in again.stderr, again.stderr[-3000:]
    assert "manifest.json" in json.loads((out / MARKER).read_text())["wrote"]

    # a name prepare writes (dedup's duplicates/) that this folder's runs never wrote: the user's, refused
    (out / "duplicates").mkdir()
    (out / "duplicates" / "found.jsonl").write_text("user data\n")
    before = tree_digest(out)
    line = assert_one_line_error(python_module(*PREPARE, "--output", out), str(out), "duplicates")
    assert "pipeline.prepare did not write" in line
    assert tree_digest(out) == before

    # the folder of another command of ours is not prepare's either
    cleaned = tmp_path / "cleaned"
    cleaned.mkdir()
    (cleaned / MARKER).write_text(json.dumps({"format": "gptstack-output", "command": "pipeline.clean",
                                              "wrote": ["kept"]}))
    assert_one_line_error(python_module(*PREPARE, "--output", cleaned), "was written by pipeline.clean")


def test_force_replaces_shards_prepare_refuses_in_one_said_line(tmp_path):
    out = tmp_path / "stray"
    out.mkdir()
    (out / "train_000009.bin").write_bytes(b"\0" * 2048)  # shards without a manifest: refused without --force
    (out / "notes.txt").write_text("keep me\n")
    assert_one_line_error(python_module(*PREPARE, "--output", out), "holds shard files but no manifest.json")
    forced = python_module(*PREPARE, "--output", out, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    said = [line for line in forced.stderr.splitlines() if line.startswith("--force:")]
    assert said == [f"--force: pipeline.prepare writes into {out}, replacing train_000009.bin"]
    assert not (out / "train_000009.bin").exists() and (out / "notes.txt").read_text() == "keep me\n"
    read_manifest(out)


@pytest.fixture
def docs(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"Document {i} has a few English words in it. " * 4}) + "\n"
                            for i in range(10)))
    return path


def test_clean_refuses_a_folder_it_did_not_write_and_force_replaces_only_its_names(tmp_path, docs):
    out = tmp_path / "mine"
    out.mkdir()
    before = users_folder(out)
    clean = ("pipeline.clean", "--input", docs, "--output", out, "--recipe", "none")
    line = assert_one_line_error(python_module(*clean), f"--output {out}", "--force")
    assert "pipeline.clean did not write it" in line and "kept, logs, report.md" in line
    assert tree_digest(out) == before and not (out / MARKER).exists()

    forced = python_module(*clean, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    said = [line for line in forced.stderr.splitlines() if line.startswith("--force:")]
    assert said == [f"--force: pipeline.clean writes into {out}, replacing kept, logs, report.md"]
    after = tree_digest(out)
    for untouched in ("notes.txt", "tokenizer/notes.txt", "cleaning/report.md"):
        assert after[untouched] == before[untouched], untouched
    assert "kept/mine.jsonl" not in after and after["report.md"] != before["report.md"]

    again = python_module(*clean)  # its own folder now: rerun without --force
    assert again.returncode == 0 and "--force" not in again.stderr, again.stderr[-3000:]
