"""Resumable runs: a local run killed in the middle of its tokenize stage, then
(a) the same command skips the tasks that had finished and writes the shards of an uninterrupted run, byte for byte;
(b) another command (another --seed) refuses to mix with the unfinished work, in one line, and changes nothing;
(c) the other command with --restart redoes what changed and writes that command's own shards."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support import REPO_ROOT

# 4 tasks, one at a time, so that the kill lands between two tasks of the tokenize stage
COMMAND = ["--limit", "3000", "--tasks", "4", "--workers", "1", "--no-dedup", "--val-tokens", "5000",
           "--shard-tokens", "60000"]


def shard_hashes(folder: Path) -> list[str]:
    return [entry["sha256"] for entry in read_manifest(folder)["shards"]]


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.prepare", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def kill_during_tokenize(out: Path) -> Path:
    process = subprocess.Popen([sys.executable, "-m", "pipeline.prepare", *COMMAND, "--output", str(out)],
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    completions = out / ".prepare-work" / "logs" / "tokenize" / "completions"
    deadline = time.time() + 240
    while not (completions / "00000").exists():
        assert time.time() < deadline and process.poll() is None, "the run never reached its tokenize stage"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return completions


def test_killed_run_resumes_skipping_finished_tasks_and_refuses_another_command(tmp_path):
    out = tmp_path / "out"
    completions = kill_during_tokenize(out)
    finished = {path.name: path.stat().st_mtime_ns for path in completions.iterdir()}
    assert 1 <= len(finished) < 4, finished  # killed midway: some tokenize tasks done, not all
    assert not (out / "manifest.json").exists()
    interrupted = tmp_path / "interrupted-copy"
    shutil.copytree(out, interrupted)

    # (b) another seed: refused before any work, one line, nothing touched
    refused = prepare(*COMMAND, "--seed", "7", "--output", out)
    assert refused.returncode == 2
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "shuffle-scatter: seed changed" in error[0] and "--restart" in error[0], refused.stderr
    assert {path.name: path.stat().st_mtime_ns for path in completions.iterdir()} == finished

    # (a) the same command resumes: the finished tasks are not run again, the shards equal an uninterrupted run's
    prepare_main([*COMMAND, "--output", str(out)])
    manifest = read_manifest(out)
    assert manifest["resumed"]
    done_again = out / "logs" / "tokenize" / "completions"  # (the logs move into the output folder)
    assert {name: (done_again / name).stat().st_mtime_ns for name in finished} == finished
    assert sorted(p.name for p in done_again.iterdir()) == ["00000", "00001", "00002", "00003"]
    prepare_main([*COMMAND, "--output", str(tmp_path / "uninterrupted")])
    assert shard_hashes(out) == shard_hashes(tmp_path / "uninterrupted")
    assert [(out / e["file"]).read_bytes() for e in manifest["shards"]] == [
        (tmp_path / "uninterrupted" / e["file"]).read_bytes() for e in manifest["shards"]]

    # (c) --restart: the changed stages are redone, nothing of the seed-1337 work leaks into the seed-7 shards
    prepare_main([*COMMAND, "--seed", "7", "--restart", "--output", str(interrupted)])
    prepare_main([*COMMAND, "--seed", "7", "--output", str(tmp_path / "seed7")])
    assert shard_hashes(interrupted) == shard_hashes(tmp_path / "seed7") != shard_hashes(out)
    assert json.loads(json.dumps(read_manifest(interrupted)["shuffle"])) == {"seed": 7, "buckets": 256}
