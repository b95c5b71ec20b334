"""data.packing=bos_aligned in the trainer: a 2-rank run killed with SIGKILL after its step-3 checkpoint and resumed
reads exactly the rows of the uninterrupted run (bit-identical losses), and the run's plan line shows the fill and
the cropped share. The packer itself is tested in tests/unit/model/data/test_packing.py."""
import os
import signal
import subprocess
import time

import pytest

from tests.integration.model.test_train_resume import HALF, STEPS, assert_ok, trainer_state, zero2_args
from tests.support.train import REPO_ROOT, descendants, read_metrics, run_train, step_losses, train_command, train_env

PACKED = ["--set", "data.packing=bos_aligned", "--set", "data.packing_window=100"]


@pytest.fixture(scope="module")
def reference(tiny_shards, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("packed-reference")
    result = run_train(2, zero2_args(tiny_shards, run_dir, *PACKED))
    assert_ok(result)
    return run_dir, result.stdout


def test_plan_line_shows_fill_and_cropped_share(reference):
    _, stdout = reference
    plan = [line for line in stdout.splitlines() if line.startswith("packing bos_aligned")]
    assert len(plan) == 1, stdout[-3000:]
    assert "end-of-text id 50256 as BOS" in plan[0] and "best fit among 100 documents" in plan[0]
    assert "fill 100.0%, cropped " in plan[0]


def test_sigkill_then_resume_reads_the_same_rows(tiny_shards, reference, tmp_path):
    reference_dir, _ = reference
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(train_command(2, zero2_args(tiny_shards, run_dir, *PACKED)), cwd=REPO_ROOT,
                               env=train_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    committed = run_dir / "checkpoints" / f"step_{HALF:06d}"
    deadline = time.time() + 240
    while not committed.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in [process.pid] + descendants(process.pid):  # torchrun's workers sit in sessions of their own
        os.kill(pid, signal.SIGKILL)
    process.wait()
    assert committed.is_dir(), "the run never committed its step-3 checkpoint"
    assert not (run_dir / "checkpoints" / f"step_{STEPS:06d}").exists(), "killed too late: the run had finished"
    saved = trainer_state(run_dir, HALF)["loader"]
    assert saved["packing"]["mode"] == "bos_aligned" and saved["samples_consumed"] == HALF * 512 // 64

    result = run_train(2, zero2_args(tiny_shards, run_dir, *PACKED))
    assert_ok(result)
    assert f"resumed from {committed}" in result.stdout
    losses = step_losses(run_dir)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses == step_losses(reference_dir)  # bit-identical floats: the same rows, in the same order
    assert [r["val_loss"] for r in read_metrics(run_dir) if "val_loss" in r] == \
        [r["val_loss"] for r in read_metrics(reference_dir) if "val_loss" in r]
    assert trainer_state(run_dir, STEPS)["loader"] == trainer_state(reference_dir, STEPS)["loader"]
