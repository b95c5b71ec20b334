"""`sbatch slurm/pretrain.sh` on a real two-node Slurm (slurmctld + 2 slurmd on loopback, see slurm_cluster.py).

(a) a run on 2 nodes completes with falling loss and a final checkpoint;
(b) the same run preempted (USR1 to the batch shell, as Slurm does before a time limit) checkpoints, requeues
    itself, resumes and ends with per-step losses identical to (a);
(c) bad input fails early with a one-line reason and is not requeued.
"""
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.support.slurm_cluster import LocalSlurm
from tests.support import REPO_ROOT

STEPS = 24
TRAIN_OVERRIDES = [f"--max-steps={STEPS}", "--set", "checkpoint.every=8", "--set", "eval.every=12",
                   "--set", "train.tokens_per_step=2048", "--set", "train.micro_batch_size=8",
                   "--set", "log.plot_every=0"]


@pytest.fixture(scope="module")
def shards(sample_shards) -> Path:
    return sample_shards  # tests/integration/conftest.py: --corpus sample --limit 600, read by the jobs, never written


def submit(slurm: LocalSlurm, tmp: Path, name: str, *train_args: str, data: Path | None = None,
           sbatch_args: tuple[str, ...] = ("--nodes=2",)) -> tuple[int, Path, Path]:
    run_dir, log = tmp / f"run-{name}", tmp / f"{name}.log"
    env = {"RUN_DIR": str(run_dir), "DEVICE": "cpu", "VENV": str(Path(sys.executable).parents[1])}
    if data is not None:
        env["DATA"] = str(data)
    job = slurm.sbatch(f"--chdir={REPO_ROOT}", f"--job-name={name}", f"--output={log}", "--ntasks-per-node=1",
                       "--gpus-per-node=0", "--cpus-per-task=1", "--time=15", *sbatch_args,
                       str(REPO_ROOT / "slurm" / "pretrain.sh"), *train_args, env=env)
    return job, run_dir, log


def step_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def wait_for_step(run_dir: Path, step: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "metrics.jsonl").exists() and max(step_losses(run_dir), default=0) >= step:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{run_dir} never reached step {step}")


@pytest.fixture(scope="module")
def uninterrupted(slurm, shards, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs")
    job, run_dir, log = submit(slurm, tmp, "straight", "configs/tiny-cpu.yaml", *TRAIN_OVERRIDES, data=shards)
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    return info, run_dir, log


def test_two_node_run_completes_with_falling_loss_and_final_checkpoint(uninterrupted):
    info, run_dir, log = uninterrupted
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-3000:]
    assert "2 rank(s)" in text and "node[1-2]" in text
    losses = step_losses(run_dir)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert sum(list(losses.values())[-4:]) / 4 < sum(list(losses.values())[:4]) / 4 - 0.5
    assert (run_dir / "checkpoints" / f"step_{STEPS:06d}" / "model" / "model.safetensors").exists()


def test_preempted_run_requeues_resumes_and_matches_uninterrupted_losses(slurm, shards, uninterrupted,
                                                                         tmp_path_factory):
    _, straight_dir, _ = uninterrupted
    tmp = tmp_path_factory.mktemp("jobs")
    job, run_dir, log = submit(slurm, tmp, "preempted", "configs/tiny-cpu.yaml", *TRAIN_OVERRIDES, data=shards)
    wait_for_step(run_dir, 5, timeout=240)
    # what Slurm does --signal seconds before a time limit or a preemption: USR1 to the batch shell
    slurm.run("scancel", "--signal=USR1", "--batch", str(job))
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-3000:]
    assert int(info["Restarts"]) >= 1
    assert "caught SIGUSR1" in text and "requeueing" in text and "restart 1]" in text
    assert "resumed from" in text
    resumed = step_losses(run_dir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == step_losses(straight_dir)  # bit-identical, step by step


def test_bad_input_fails_early_with_one_line_and_no_requeue(slurm, shards, tmp_path):
    missing_config = submit(slurm, tmp_path, "noconfig", "configs/does-not-exist.yaml", data=shards,
                            sbatch_args=("--nodes=1",))
    no_shards = submit(slurm, tmp_path, "noshards", "configs/tiny-cpu.yaml", data=tmp_path / "empty",
                       sbatch_args=("--nodes=1",))
    for (job, _, log), reason in [(missing_config, "does-not-exist.yaml does not exist"),
                                  (no_shards, "empty")]:
        info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=180)
        text = log.read_text()
        assert info["JobState"] == "FAILED" and info["Restarts"] == "0", text[-2000:]
        assert any(line.startswith(("error:", "[pretrain.sh")) and "error" in line and reason in line
                   for line in text.splitlines()), text[-2000:]
    # a request the cluster cannot satisfy is refused at submission, before anything runs
    refused = slurm.run("sbatch", "--gpus-per-node=8", str(REPO_ROOT / "slurm" / "pretrain.sh"), check=False)
    assert refused.returncode != 0 and "error" in refused.stderr


def test_run_that_keeps_crashing_at_the_same_step_stops_requeueing(slurm, shards, uninterrupted, tmp_path):
    _, straight_dir, _ = uninterrupted
    job_dir = tmp_path / "run-crashing"
    shutil.copytree(straight_dir, job_dir)
    # A trainer that dies hard at every start (a damaged checkpoint file is no longer a crash: the trainer verifies
    # it and falls back to an older one), so every attempt fails at step 24; the checkpoint helper still runs.
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "sitecustomize.py").write_text(
        "import os, sys\nif sys.orig_argv[1:3] == ['-m', 'model.train']:\n    os._exit(1)\n")
    run_dir, log = tmp_path / "run-crashing", tmp_path / "crashing.log"
    env = {"RUN_DIR": str(run_dir), "DEVICE": "cpu", "VENV": str(Path(sys.executable).parents[1]),
           "DATA": str(shards), "MAX_FAILURES_AT_STEP": "2", "PYTHONPATH": str(crash)}
    job = slurm.sbatch(f"--chdir={REPO_ROOT}", "--job-name=crashing", f"--output={log}", "--nodes=1",
                       "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=15",
                       str(REPO_ROOT / "slurm" / "pretrain.sh"), "configs/tiny-cpu.yaml", *TRAIN_OVERRIDES,
                       f"--max-steps={STEPS + 8}", env=env)
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=240)
    text = log.read_text()
    assert info["JobState"] == "FAILED" and info["Restarts"] == "1", text[-3000:]
    assert f"failed 2 times resuming from step {STEPS}" in text and "not requeueing again" in text
    assert len((run_dir / "slurm_failures.txt").read_text().splitlines()) == 2
