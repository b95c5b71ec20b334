"""The trainer on one rank: a real run with metrics, HellaSwag, checkpoints and resume, and every kind of bad input
failing with one line before any step (the config file, the DeepSpeed config and the optimizer: tests/unit/model/)."""
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.data.batches import TokenBatches
from model.config import load_config
from model.train import Trainer
from model.checkpoint.weights import load_model
from cluster.env import resolve_dist_env
from tests.support import SHARED_DATA
from tests.support.train import REPO_ROOT, TINY, read_metrics, run_train, train_env

CONFIGS = REPO_ROOT / "configs"
HELLASWAG = SHARED_DATA / "eval" / "hellaswag_val.jsonl"


# ---- a real run -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards  # tests/integration/conftest.py: read, never written


def run_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--data", str(data), "--run-dir", str(run_dir), *extra]


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    result = run_train(1, run_args(shards, run_dir, "--max-steps", "8", "--set", "eval.every=4",
                                   "--set", "checkpoint.every=4", "--set", "checkpoint.keep_last=1",
                                   "--set", "log.tensorboard=true", "--set", f"eval.hellaswag={HELLASWAG}",
                                   "--set", "eval.hellaswag_examples=8", "--set", "log.plot_every=2"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir


def test_run_writes_metrics_plot_config_and_checkpoints(trained):
    records = read_metrics(trained)
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    for r in steps:
        assert r["tokens_per_s"] > 0 and r["lr"] > 0 and r["grad_norm"] > 0 and r["mfu"] is None  # CPU: n/a
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.3  # it learns
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [4, 8] and evals[1]["val_loss"] < evals[0]["val_loss"]
    assert all(0.0 <= r["hellaswag_acc_token_norm"] <= 1.0 for r in evals)
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((trained / "tb").glob("events.out.tfevents.*"))
    saved = load_config(trained / "config.yaml")
    assert saved.train.max_steps == 8 and saved.data.seq_len == 64 and saved.eval.hellaswag_examples == 8
    # keep_last=1: only the final checkpoint is left, complete
    assert [p.name for p in (trained / "checkpoints").iterdir()] == ["step_000008"]
    state = json.loads((trained / "checkpoints" / "step_000008" / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["loader"]["samples_consumed"] == 8 * 512 // 64


def test_checkpoint_weights_load_with_model_weights(trained, shards):
    model = load_model(trained)  # model.checkpoint.weights resolves the run folder to its latest checkpoint
    assert model.config.n_embd == 64 and model.config.block_size == 64
    # The consolidated fp32 weights are exactly the trained ones: they reproduce the logged validation loss
    # (2 micro-batches of 4 sequences from the start of the val stream).
    val = TokenBatches(shards, "val", batch_size=4, seq_len=64, shuffle=False)
    with torch.no_grad():
        losses = [model(*val.next_batch())[1].item() for _ in range(2)]
    logged = [r["val_loss"] for r in read_metrics(trained) if "val_loss" in r][-1]
    assert sum(losses) / 2 == pytest.approx(logged, rel=1e-5)
    assert logged < 10.5  # and they are trained (a fresh model scores ln(50257) = 10.8)


def test_resume_auto_continues_and_ignores_unfinished_saves(trained, shards, tmp_path):
    run_dir = tmp_path / "continued"
    shutil.copytree(trained, run_dir)
    # A save cut short (any name ending .tmp, even with every file present) must never be resumed from.
    fake = run_dir / "checkpoints" / "step_000099.tmp"
    shutil.copytree(run_dir / "checkpoints" / "step_000008", fake)
    result = run_train(1, run_args(shards, run_dir, "--max-steps", "10", "--set", "checkpoint.keep_last=1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout and "step_000008 at step 8" in result.stdout
    assert not fake.exists()
    assert [r["step"] for r in read_metrics(run_dir) if "loss" in r] == list(range(1, 11))
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step_000010"]
    # starting a finished run again is not an error (a requeued job): nothing to do, exit 0
    again = run_train(1, run_args(shards, run_dir, "--max-steps", "10"))
    assert again.returncode == 0 and "nothing to train" in again.stdout


class StopAfterTwoSteps(Trainer):
    """What a preemption handler (SIGUSR1/SIGTERM under Slurm) does: request_stop() while a step runs."""

    def train_step(self) -> dict:
        result = super().train_step()
        if self.step == 1:  # fit() increments step after this returns: this is step 2
            self.request_stop()
        return result


def test_request_stop_finishes_the_step_and_checkpoints(shards, tmp_path):
    overrides = [value for flag, value in zip(TINY, TINY[1:]) if flag == "--set"]
    config = load_config(CONFIGS / "tiny-cpu.yaml", overrides + [f"data.dir={shards}", f"run_dir={tmp_path / 'run'}",
                                                                  "train.max_steps=50", "eval.every=0"])
    environ = dict(os.environ)
    trainer = StopAfterTwoSteps(config, resolve_dist_env({}), "auto")
    try:
        trainer.setup()
        assert trainer.fit() == 2
    finally:
        trainer.close()
        os.environ.clear()
        os.environ.update(environ)  # the trainer exported RANK, MASTER_PORT... for torch.distributed
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_000002"]
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2]


# ---- bad input: one line, exit 2, before any step, nothing damaged ----------------------------------------------
def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "train:" not in result.stdout  # no step was taken


@pytest.fixture
def shard_copy(shards, tmp_path) -> Path:
    return Path(shutil.copytree(shards, tmp_path / "shards"))


def test_missing_shard(shard_copy, tmp_path):
    (shard_copy / "train_000002.bin").unlink()
    assert_one_line_error(run_train(1, run_args(shard_copy, tmp_path / "run")), "train_000002.bin")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_truncated_shard(shard_copy, tmp_path):
    path = shard_copy / "train_000001.bin"
    path.write_bytes(path.read_bytes()[:-1000])
    assert_one_line_error(run_train(1, run_args(shard_copy, tmp_path / "run")), "train_000001.bin")


def test_corrupt_shard_bytes(shard_copy, tmp_path):
    path = shard_copy / "train_000002.bin"
    data = bytearray(path.read_bytes())
    data[5000:5010] = b"\xff" * 10  # same size, valid header: only the checksum can tell
    path.write_bytes(bytes(data))
    assert_one_line_error(run_train(1, run_args(shard_copy, tmp_path / "run")), "train_000002.bin", "sha256")


def test_missing_data_folder(tmp_path):
    assert_one_line_error(run_train(1, run_args(tmp_path / "nowhere", tmp_path / "run")), "nowhere")


def test_unknown_config_key(shards, tmp_path):
    result = run_train(1, run_args(shards, tmp_path / "run", "--set", "train.warmup=5"))
    assert_one_line_error(result, "unknown key 'train.warmup'")
    assert not (tmp_path / "run").exists()


def test_checkpoint_from_another_model_size(trained, shards):
    before = tree_digest(trained / "checkpoints")
    result = run_train(1, run_args(shards, trained, "--max-steps", "12", "--set", "model.n_embd=128"))
    assert_one_line_error(result, "another model size", "n_embd=64")
    assert tree_digest(trained / "checkpoints") == before


def test_model_vocabulary_smaller_than_the_tokenizer(shards, tmp_path):
    result = run_train(1, run_args(shards, tmp_path / "run", "--set", "model.vocab_size=1000"))
    assert_one_line_error(result, "50,257 tokens", "model.vocab_size")


def test_output_folder_without_space(shards, tmp_path):
    # A model whose checkpoint needs terabytes: the free space check refuses it before building anything.
    result = run_train(1, run_args(shards, tmp_path / "run", "--set", "model.n_layer=400",
                                   "--set", "model.n_embd=16384", "--set", "model.n_head=128"))
    assert_one_line_error(result, "GB free", "needs about")
    assert not (tmp_path / "run" / "checkpoints").exists()


def drop_permission_override() -> None:
    """In the child, before exec: give up root's right to ignore permission bits (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH leave the bounding set), so a read-only folder is read-only even for root."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP


def test_output_folder_without_permission(shards, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = subprocess.run([sys.executable, "-m", "model.train", *run_args(shards, locked / "run")],
                                cwd=REPO_ROOT, env=train_env(), capture_output=True, text=True, timeout=120,
                                preexec_fn=drop_permission_override)
        assert_one_line_error(result, "not writable", str(locked / "run"))
    finally:
        locked.chmod(0o755)
