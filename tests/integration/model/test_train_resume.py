"""Exact resume and resume on another rank count, with real DeepSpeed ZeRO-2 over gloo on CPU.

One reference run (2 ranks via the deepspeed launcher, 6 steps, checkpoints at 3 and 6) is compared with:
- a torchrun run SIGKILLed after its step-3 checkpoint and resumed with --resume auto: bit-identical losses;
- the step-3 checkpoint resumed on 1 rank (DeepSpeed universal checkpoint): same data stream, same losses up to
  float reduction order;
- a 1-rank run's step-3 checkpoint resumed on 2 ranks started the way Slurm's srun starts tasks (SLURM_* env).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.env import SLURM_PORT_BASE, SLURM_PORT_SPAN
from tests.support.loopback_netns import shared_netns
from tests.support.train import (REPO_ROOT, TINY, descendants, free_port, read_metrics, run_train,
                                 step_losses, train_command, train_env)

STEPS, HALF = 6, 3


def zero2_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--set", "train.zero_stage=2", "--set", "checkpoint.every=3", "--set", "eval.every=3",
            "--data", str(data), "--run-dir", str(run_dir), "--max-steps", str(STEPS), *extra]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards  # tests/integration/conftest.py: read, never written


@pytest.fixture(scope="module")
def reference(shards, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference")
    # Started with the deepspeed launcher; the runs compared with it use torchrun and srun-style variables.
    result = run_train(2, zero2_args(shards, run_dir), launcher="deepspeed")
    assert_ok(result)
    assert "2 rank(s)" in result.stdout
    return run_dir


def trainer_state(run_dir: Path, step: int) -> dict:
    return json.loads((run_dir / "checkpoints" / f"step_{step:06d}" / "trainer_state.json").read_text())


def test_sigkill_then_resume_gives_bit_identical_losses(shards, reference, tmp_path):
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(train_command(2, zero2_args(shards, run_dir)), cwd=REPO_ROOT, env=train_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    committed = run_dir / "checkpoints" / f"step_{HALF:06d}"
    deadline = time.time() + 240
    while not committed.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    # torchrun starts its workers in sessions of their own: kill the launcher and both ranks by pid.
    family = [process.pid] + descendants(process.pid)
    for pid in family:
        os.kill(pid, signal.SIGKILL)
    process.wait()
    assert committed.is_dir(), "the run never committed its step-3 checkpoint"
    assert not (run_dir / "checkpoints" / f"step_{STEPS:06d}").exists(), "killed too late: the run had finished"

    result = run_train(2, zero2_args(shards, run_dir))  # --resume auto is the default
    assert_ok(result)
    assert f"resumed from {committed}" in result.stdout
    reference_losses, resumed_losses = step_losses(reference), step_losses(run_dir)
    assert sorted(resumed_losses) == list(range(1, STEPS + 1))  # each step logged once, killed attempt's extra gone
    assert resumed_losses == reference_losses  # bit-identical floats, not approximately equal
    reference_val = [r["val_loss"] for r in read_metrics(reference) if "val_loss" in r]
    resumed_val = [r["val_loss"] for r in read_metrics(run_dir) if "val_loss" in r]
    assert resumed_val == reference_val
    assert trainer_state(run_dir, STEPS)["loader"] == trainer_state(reference, STEPS)["loader"]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_two_rank_checkpoint_resumes_on_one_rank(shards, reference, tmp_path):
    run_dir = tmp_path / "one-rank"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(reference / "checkpoints" / f"step_{HALF:06d}", run_dir / "checkpoints" / f"step_{HALF:06d}")
    result = run_train(1, zero2_args(shards, run_dir))
    assert_ok(result)
    assert "to a universal checkpoint for 1 rank(s)" in result.stdout
    assert (run_dir / "checkpoints" / f"step_{HALF:06d}" / "universal").is_dir()

    # The global sample counter continues: 1 rank with 2 accumulation steps consumes exactly the windows the
    # 2 ranks would have, so after the same steps the loaders agree and no window was repeated or skipped.
    one_rank, two_ranks = trainer_state(run_dir, STEPS), trainer_state(reference, STEPS)
    assert one_rank["loader"] == two_ranks["loader"]
    assert one_rank["loader"]["samples_consumed"] == STEPS * 512 // 64
    assert one_rank["world_size"] == 1
    # Same samples, same restored weights and Adam moments: the losses agree up to the order of float sums
    # (rank-local means averaged vs accumulated micro-batches); a wrong restore would differ by far more.
    reference_losses, losses = step_losses(reference), step_losses(run_dir)
    for step in range(HALF + 1, STEPS + 1):
        assert losses[step] == pytest.approx(reference_losses[step], rel=1e-5, abs=1e-5)


def test_one_rank_checkpoint_resumes_on_two_slurm_tasks(shards, reference, tmp_path):
    single = tmp_path / "single"
    assert_ok(run_train(1, zero2_args(shards, single)))
    assert step_losses(single)[1] == pytest.approx(step_losses(reference)[1], rel=1e-6)

    # Two plain processes with the variables srun gives each task: no torchrun, no MASTER_* (derived from
    # the node list and the job id; the node list is the loopback address so the rendezvous stays local).
    run_dir = tmp_path / "slurm"
    command = [sys.executable, "-m", "model.train",
               *zero2_args(shards, run_dir, "--resume", str(single / "checkpoints" / f"step_{HALF:06d}"))]
    port = free_port(low=SLURM_PORT_BASE, high=SLURM_PORT_BASE + SLURM_PORT_SPAN)
    job_id = str(port - SLURM_PORT_BASE + 7 * SLURM_PORT_SPAN)  # a job id whose derived port is free
    processes = []
    for task in range(2):
        env = dict(train_env(), SLURM_PROCID=str(task), SLURM_NTASKS="2", SLURM_LOCALID=str(task),
                   SLURM_NTASKS_PER_NODE="2", SLURM_JOB_NODELIST="127.0.0.1", SLURM_JOB_ID=job_id)
        processes.append(subprocess.Popen(shared_netns().wrap(command), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "2 rank(s) (slurm)" in outputs[0]
    state = trainer_state(run_dir, STEPS)
    assert state["world_size"] == 2
    assert state["loader"] == trainer_state(single, STEPS)["loader"]
    losses, single_losses = step_losses(run_dir), step_losses(single)
    assert sorted(losses) == list(range(HALF + 1, STEPS + 1))  # a new run folder: only the steps it trained
    for step in losses:
        assert losses[step] == pytest.approx(single_losses[step], rel=1e-5, abs=1e-5)
