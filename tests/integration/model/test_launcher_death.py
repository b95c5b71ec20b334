"""A 2-rank torchrun run whose launcher dies: the ranks stop within seconds, and the restart resumes exactly.

torchrun starts every worker in a session of its own, so SIGKILL to the launcher's whole process group (what a
closed terminal or `kill -9 -PGID` does) reaches the launcher alone. Before cluster/lifeline.py the two ranks
trained on to the last step, unsupervised, holding the run folder's lock, and the restart was refused. Real
DeepSpeed over gloo on CPU, real processes, real signals; the ranks are found and checked by pid, never by name.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.train import REPO_ROOT, TINY, descendants, run_train, step_losses, train_command, train_env

STEPS, EVERY = 24, 4  # ~20 steps still to train after the first checkpoint: seconds, even on an idle machine
GONE_WITHIN = 10.0  # seconds after the kill; the ranks look twice a second


def run_args(data: Path, run_dir: Path) -> list[str]:
    return [*TINY, "--set", f"checkpoint.every={EVERY}", "--set", "eval.every=0", "--data", str(data),
            "--run-dir", str(run_dir), "--max-steps", str(STEPS)]


def start_time(pid: int) -> str | None:
    """/proc/PID/stat's start time, None once the process is gone (a zombie is gone: it only waits to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards  # tests/integration/conftest.py: read, never written


def test_ranks_stop_with_their_launcher_and_the_restart_resumes_exactly(shards, tmp_path):
    reference = tmp_path / "reference"
    result = run_train(2, run_args(shards, reference))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    run_dir, log = tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "w") as output:  # its own process group, as a terminal's job is
        launcher = subprocess.Popen(train_command(2, run_args(shards, run_dir)), cwd=REPO_ROOT, env=train_env(),
                                    stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    first = run_dir / "checkpoints" / f"step_{EVERY:06d}"
    deadline = time.monotonic() + 300
    while not first.is_dir() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.is_dir(), f"the run never committed its first checkpoint:\n{log.read_text()[-3000:]}"
    ranks = {pid: start_time(pid) for pid in descendants(launcher.pid)}
    assert len(ranks) >= 2, "torchrun's two workers were not found below the launcher"

    os.killpg(launcher.pid, signal.SIGKILL)  # the whole group: torchrun alone, its workers are in other sessions
    launcher.wait()
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < GONE_WITHIN and any(start_time(p) == s for p, s in ranks.items()):
        time.sleep(0.1)
    alive = [pid for pid, start in ranks.items() if start_time(pid) == start]
    for pid in alive:  # do not leave them training for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"rank processes {alive} still ran {GONE_WITHIN:.0f} s after their launcher was killed"
    assert not (run_dir / "checkpoints" / f"step_{STEPS:06d}").exists(), "the orphaned ranks trained to the end"
    assert log.read_text().count("launcher (pid") == 2, log.read_text()[-3000:]  # each rank said why it stopped

    # The same command at once: the run folder's lock is free, and it continues from the newest checkpoint.
    result = run_train(2, run_args(shards, run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resumed from" in result.stdout and "fresh start" not in result.stdout
    losses = step_losses(run_dir)
    assert sorted(losses) == list(range(1, STEPS + 1))  # each step once: the killed attempt's extra lines are gone
    assert losses == step_losses(reference)  # bit-identical floats, not approximately equal
