"""The checkpoint layout's one owner (model/checkpoint/layout.py, manager.py): which step folders count, the latest one, the save
schedule, and the `python -m model.checkpoint latest` answer that slurm/pretrain.sh reads."""
import subprocess
import sys
from pathlib import Path

import pytest

from model.checkpoint.layout import holds_weights, is_complete, latest, step_dir_name

from model.checkpoint.manager import CheckpointManager, resolve_resume
from model.checkpoint.weights import resolve_checkpoint
from tests.support import REPO_ROOT


def make_step(run_dir: Path, step: int, parts: tuple[str, ...] = ("state", "deepspeed", "model"),
              suffix: str = "") -> Path:
    """A step folder holding the named parts of a checkpoint (empty files: only the layout matters here)."""
    folder = run_dir / "checkpoints" / (step_dir_name(step) + suffix)
    folder.mkdir(parents=True)
    if "state" in parts:
        (folder / "trainer_state.json").write_text("{}")
    if "deepspeed" in parts:
        (folder / "deepspeed").mkdir()
    if "model" in parts:
        (folder / "model").mkdir()
        (folder / "model" / "model.safetensors").write_bytes(b"")
        (folder / "model" / "config.json").write_text("{}")
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Complete checkpoints at 999_999 and 1_000_000 (past the 6-digit padding), newer ones that are not."""
    run = tmp_path / "run"
    make_step(run, 999_999)
    make_step(run, 1_000_000)
    make_step(run, 1_000_100, parts=("model",))  # weights only: readable by model.sample, not resumable
    make_step(run, 1_000_200, suffix=".tmp")  # a save cut short
    make_step(run, 1_000_300, parts=("state", "deepspeed"))  # no weights
    (run / "checkpoints" / "step_1000400.old.tmp").mkdir()
    return run


def test_resume_and_sampling_readers_take_the_latest_their_predicate_accepts(run_dir):
    checkpoints = run_dir / "checkpoints"
    assert latest(run_dir) == checkpoints / "step_1000000"  # numeric order, not the names' order
    assert latest(checkpoints) == checkpoints / "step_1000000"
    assert resolve_resume("auto", run_dir) == resolve_resume(str(run_dir), run_dir) == checkpoints / "step_1000000"
    assert latest(run_dir, accept=holds_weights) == checkpoints / "step_1000100"
    assert resolve_checkpoint(run_dir) == checkpoints / "step_1000100" / "model"
    assert not is_complete(checkpoints / "step_1000200.tmp") and not holds_weights(checkpoints / "step_1000200.tmp")
    assert latest(run_dir / "nothing") is None


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.checkpoint", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_latest_cli_prints_what_resume_auto_would_load_or_exits_1(run_dir, tmp_path):
    found = run_cli("latest", str(run_dir))
    assert found.returncode == 0 and found.stdout == f"{run_dir / 'checkpoints' / 'step_1000000'}\n"
    step = run_cli("latest", "--step", str(run_dir))
    assert step.returncode == 0 and step.stdout == "1000000\n"
    (tmp_path / "fresh").mkdir()
    for empty in (tmp_path / "fresh", tmp_path / "absent"):
        none = run_cli("latest", "--step", str(empty))
        assert none.returncode == 1 and none.stdout == "" and none.stderr == ""


@pytest.mark.parametrize("every, last_step, saved", [
    (4, 10, [4, 8, 10]),  # every N steps and at the last one
    (0, 10, [10]),  # 0: only at the end
    (5, 10, [5, 10]),  # the last step is a multiple: saved once
])
def test_save_schedule(tmp_path, every, last_step, saved):
    manager = CheckpointManager(tmp_path, rank=0, world_size=1, keep_last=3, every=every, last_step=last_step)
    assert [step for step in range(1, last_step + 1) if manager.should_save(step)] == saved


def test_a_stop_saves_once_and_a_resumed_step_is_not_saved_again(tmp_path):
    manager = CheckpointManager(tmp_path, rank=0, world_size=1, keep_last=3, every=4, last_step=10)
    assert manager.should_save(3, ending=True)  # a signal between scheduled saves
    manager.saved_step = 3  # what save() and load() record
    assert not manager.should_save(3, ending=True)  # the loop's end does not write the same step twice
    assert manager.should_save(4)
