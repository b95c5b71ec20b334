"""Checkpoint loading that cannot be steered by symbolic links (issue 22), with real runs: a 1-rank ZeRO-1 run, a resume
under ZeRO-2 that makes DeepSpeed's universal checkpoint (step_N/universal/), then the attack. The parameter folder
`universal/zero/<name>/` is replaced with a link to a folder whose .pt files run a command when unpickled; the check
before loading walked with Path.rglob (which does not enter linked folders) and DeepSpeed's universal loader unpickles
what it lists there with weights_only=False. Now a checkpoint holding any link is refused before anything is loaded:
one error line, exit 2, and the command never runs."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.faults import assert_one_line_error, plant_pickle
from tests.support.train import TINY, run_train

CADENCE = ["--set", "train.zero_stage=1", "--set", "checkpoint.every=2", "--set", "checkpoint.keep_last=3",
           "--set", "eval.every=0"]


def train(data: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_train(1, [*TINY, *CADENCE, "--data", str(data), "--run-dir", str(run_dir), *extra])


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards


@pytest.fixture(scope="module")
def universal_run(shards, tiny_run, tmp_path_factory) -> Path:
    """A copy of the shared 1-rank ZeRO-1 run (tests/integration/conftest.py) whose step_000004 also holds
    DeepSpeed's universal form (written by a resume under ZeRO-2)."""
    root = tmp_path_factory.mktemp("link-run")
    shutil.copytree(tiny_run, root / "run")
    checkpoint = root / "run" / "checkpoints" / "step_000004"
    assert_ok(train(shards, root / "converted", "--resume", str(checkpoint), "--set", "train.zero_stage=2",
                    "--max-steps", "5"))
    assert (checkpoint / "universal" / "zero").is_dir(), "the ZeRO-1 -> ZeRO-2 resume wrote no universal checkpoint"
    return root / "run"


@pytest.fixture
def run_copy(universal_run, tmp_path) -> Path:
    return Path(shutil.copytree(universal_run, tmp_path / "run", symlinks=True))


def test_linked_universal_parameter_folder_is_refused_and_its_pickle_never_runs(shards, run_copy, tmp_path):
    checkpoint = run_copy / "checkpoints" / "step_000004"
    zero = checkpoint / "universal" / "zero"
    name = "transformer.h.0.attn.c_attn.weight"  # a parameter the optimizer holds (lm_head.weight is tied: unread)
    assert (zero / name / "fp32.pt").is_file()
    evil = tmp_path / "evil" / name  # the same files, each now a pickle that runs a command
    shutil.copytree(zero / name, evil)
    marker = tmp_path / "pwned"
    for path in sorted(evil.glob("*.pt")):
        plant_pickle(path, marker)
    shutil.rmtree(zero / name)
    os.symlink(evil, zero / name)
    result = train(shards, tmp_path / "again", "--resume", str(checkpoint), "--set", "train.zero_stage=2",
                   "--max-steps", "5")
    assert not marker.exists(), "resuming ran a command planted behind a link in the universal checkpoint"
    assert_one_line_error(result, "step_000004", f"universal/zero/{name}", "symbolic link")
    assert not (tmp_path / "again" / "checkpoints").exists() or not any((tmp_path / "again" / "checkpoints").iterdir())


def test_linked_file_in_deepspeed_folder_is_refused_by_resume_auto(shards, run_copy, tmp_path):
    """--resume auto does not fall back to an older checkpoint past a link: a link is tampering, not damage."""
    checkpoint = run_copy / "checkpoints" / "step_000004"
    optim = next((checkpoint / "deepspeed").glob("*optim_states.pt"))
    marker = tmp_path / "pwned"
    plant_pickle(tmp_path / "optim.pt", marker)
    optim.unlink()
    os.symlink(tmp_path / "optim.pt", optim)
    result = train(shards, run_copy, "--resume", "auto", "--max-steps", "6")
    assert not marker.exists()
    assert_one_line_error(result, "step_000004", f"deepspeed/{optim.name}", "symbolic link")
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
