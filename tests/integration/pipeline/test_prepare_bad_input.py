"""Bad input to `prepare`: skipped-and-kept records, one-line errors before writing, never a half-written output."""
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.shards import file_sha256, open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer
from tests.support import REPO_ROOT

GOOD = ["First good document.", "Second good document, with ünïcode.", "Third one\nover two lines."]


def run_prepare(*args, check_rc=None):
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", *map(str, args)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def bad_jsonl_run(tmp_path_factory):
    """One run over a jsonl file mixing good lines with every kind of bad record."""
    folder = tmp_path_factory.mktemp("bad")
    lines = [
        json.dumps({"text": GOOD[0]}).encode(),
        b'{"text": "cut off in the middle',  # line 2: malformed JSON
        b'{"text": "caf\xe9 latin-1 bytes"}',  # line 3: invalid UTF-8
        json.dumps({"text": ""}).encode(),  # line 4: empty document
        json.dumps({"text": "   \n "}).encode(),  # line 5: empty document (whitespace only)
        json.dumps({"title": "no text field"}).encode(),  # line 6: record without text
        json.dumps({"text": GOOD[1]}, ensure_ascii=False).encode(),
        b"",  # a blank line is not a record
        json.dumps({"text": GOOD[2]}).encode(),
    ]
    source = folder / "mixed.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = folder / "out"
    result = run_prepare("--input", source, "--output", out, "--val-tokens", "0", check_rc=0)
    return source, out, result


def rejected_records(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((out / "rejected").glob("*.jsonl")) for line in path.open()]


def test_good_records_survive_bad_ones(bad_jsonl_run):
    _, out, _ = bad_jsonl_run
    tokens = np.concatenate([open_shard(out / e["file"]) for e in read_manifest(out)["shards"]])
    text = get_tokenizer().encoding.decode(tokens.tolist())
    assert text.endswith("<|endoftext|>")
    assert sorted(text.split("<|endoftext|>")[:-1]) == sorted(GOOD)  # all of them, in shuffled order


@pytest.mark.parametrize("reason,line,count", [("malformed_json", 2, 1), ("invalid_utf8", 3, 1),
                                               ("empty_document", 4, 2), ("missing_text", 6, 1)])
def test_each_bad_record_is_counted_named_and_kept(bad_jsonl_run, reason, line, count):
    source, out, result = bad_jsonl_run
    assert read_manifest(out)["skipped"][reason] == count
    assert f"{source}:{line}: skipped" in result.stderr  # the warning names file:line
    kept = [r for r in rejected_records(out) if r["reason"] == reason]
    assert len(kept) == count and kept[0]["where"] == f"{source}:{line}"
    assert "skipped 5 records" in result.stdout


def test_kept_records_hold_the_original_content(bad_jsonl_run):
    _, out, _ = bad_jsonl_run
    by_reason = {r["reason"]: r for r in rejected_records(out)}
    assert by_reason["malformed_json"]["record"] == '{"text": "cut off in the middle'
    assert by_reason["invalid_utf8"]["record"] == '{"text": "caf\\xe9 latin-1 bytes"}'
    assert by_reason["missing_text"]["record"] == {"title": "no text field"}


def test_truncated_compressed_file_keeps_what_was_read(tmp_path):
    lines = "".join(json.dumps({"text": f"Document number {i} of a long file."}) + "\n" for i in range(2000))
    whole = gzip.compress(lines.encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[:len(whole) // 2])  # a download that stopped half way
    out = tmp_path / "out"
    result = run_prepare("--input", tmp_path / "cut.jsonl.gz", "--output", out, "--val-tokens", "0", check_rc=0)
    manifest = read_manifest(out)
    assert manifest["skipped"] == {"corrupt_file": 1}
    assert 0 < manifest["totals"]["documents"] < 2000
    assert f"{tmp_path / 'cut.jsonl.gz'}:" in result.stderr and "corrupt or truncated" in result.stderr


def test_input_without_any_usable_record(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"title": "x"}\n{"text": ""}\nnot json\n')
    result = run_prepare("--input", tmp_path / "bad.jsonl", "--output", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no document could be read")
    assert not (tmp_path / "out" / "manifest.json").exists() and not list((tmp_path / "out").glob("*.bin"))


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_corpus(tmp_path):
    result = run_prepare("--corpus", "wikipedia-full", "--output", tmp_path / "out")
    assert_one_line_error(result, "unknown corpus 'wikipedia-full'", "sample", "fineweb")
    assert not (tmp_path / "out").exists()


def test_missing_input_path(tmp_path):
    result = run_prepare("--input", tmp_path / "nowhere.jsonl", "--output", tmp_path / "out")
    assert_one_line_error(result, str(tmp_path / "nowhere.jsonl"), "no such file")
    result = run_prepare("--input", tmp_path / "*.jsonl", "--output", tmp_path / "out")
    assert_one_line_error(result, "matches no file")
    assert not (tmp_path / "out").exists()


def test_unsupported_input_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_prepare("--input", tmp_path / "notes.txt", "--output", tmp_path / "out")
    assert_one_line_error(result, "notes.txt: unsupported input format")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_prepare("--limit", "5", "--output", blocker / "out")  # its parent is a file: cannot be created
    assert_one_line_error(result, str(blocker / "out"), "not writable")
    result = run_prepare("--limit", "5", "--output", blocker)
    assert_one_line_error(result, "exists and is not a folder")
    assert blocker.read_text() == "not a folder"


def test_output_of_another_tokenizer_is_refused(tmp_path):
    out = tmp_path / "out"
    run_prepare("--limit", "20", "--output", out, check_rc=0)
    before = {p.name: file_sha256(p) for p in out.iterdir() if p.is_file()}
    result = run_prepare("--limit", "20", "--output", out, "--tokenizer", "r50k_base")
    assert_one_line_error(result, "holds shards of tokenizer 'gpt2', not 'r50k_base'")
    assert {p.name: file_sha256(p) for p in out.iterdir() if p.is_file()} == before


def test_foreign_shards_without_manifest_are_refused(tmp_path):
    (tmp_path / "train_000001.bin").write_bytes(b"\0" * 2048)
    result = run_prepare("--limit", "5", "--output", tmp_path)
    assert_one_line_error(result, "holds shard files but no manifest.json")


def test_bad_option_values(tmp_path):
    assert_one_line_error(run_prepare("--shard-tokens", "0", "--output", tmp_path / "o"), "--shard-tokens")
    assert_one_line_error(run_prepare("--subset", "10BT", "--corpus", "fineweb", "--output", tmp_path / "o"),
                          "--subset 10BT")
    assert_one_line_error(run_prepare("--subset", "sample-10BT", "--output", tmp_path / "o"),
                          "--subset does not apply to --corpus sample")


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "the run never reached the point to interrupt"
        time.sleep(0.01)


# A slower run with many tiny shards: 4 tasks over the whole sample corpus.
SLOW_RUN = ["--tasks", "4", "--shard-tokens", "1000", "--val-tokens", "500"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The manifest of the slow run left alone, which every killed-and-resumed run must reproduce."""
    clean = tmp_path_factory.mktemp("uninterrupted") / "clean"
    run_prepare("--output", clean, *SLOW_RUN, check_rc=0)
    return read_manifest(clean)


@pytest.mark.parametrize("phase", ["tokenize", "write shards"])
def test_killed_run_leaves_earlier_output_intact_and_resumes(tmp_path, phase, uninterrupted):
    out = tmp_path / "out"
    run_prepare("--limit", "50", "--output", out, "--val-tokens", "500", check_rc=0)
    before = {p.name: file_sha256(p) for p in out.glob("*") if p.is_file()}
    manifest_before = read_manifest(out)

    args = ["--output", out, *SLOW_RUN]
    process = subprocess.Popen([sys.executable, "-m", "pipeline.prepare", *map(str, args)], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    work = out / ".prepare-work"
    if phase == "tokenize":  # task 0 finished, later tasks still running
        wait_for(lambda: (work / "tokens" / "00000.tokens").exists())
    else:  # some shards already written into the staging folder
        wait_for(lambda: len(list((work / "staged").glob("train_*.bin"))) >= 3)
    os.killpg(process.pid, signal.SIGKILL)  # the whole run, as when its machine dies (datatrove's helpers too)
    process.wait()

    # The earlier output is untouched and still verifies; nothing of the killed run is in the output folder.
    assert {p.name: file_sha256(p) for p in out.glob("*") if p.is_file()} == before
    assert read_manifest(out) == manifest_before
    for entry in manifest_before["shards"]:
        assert file_sha256(out / entry["file"]) == entry["sha256"]
    for shard in (work / "staged").glob("*.bin") if (work / "staged").exists() else []:
        open_shard(shard)  # whatever was renamed into place is complete

    # The same command finishes the job and gives what an uninterrupted run gives.
    run_prepare(*args, check_rc=0)
    assert [e["sha256"] for e in read_manifest(out)["shards"]] == [e["sha256"] for e in uninterrupted["shards"]]
    assert not work.exists()
    assert not list(out.glob(".*.tmp"))
