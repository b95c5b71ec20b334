"""The checkpoint layout's one owner (model/checkpoint/layout.py, manager.py): which step folders count, the latest one,
and the save schedule. The `python -m model.checkpoint latest` command: tests/integration/model/test_checkpoint_cli.py."""
from pathlib import Path

import pytest

from model.checkpoint.layout import holds_weights, is_complete, latest
from model.checkpoint.manager import CheckpointManager, resolve_resume
from model.checkpoint.weights import resolve_checkpoint
from tests.support.checkpoints import checkpoint_ladder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return checkpoint_ladder(tmp_path / "run")


def test_resume_and_sampling_readers_take_the_latest_their_predicate_accepts(run_dir):
    checkpoints = run_dir / "checkpoints"
    assert latest(run_dir) == checkpoints / "step_1000000"  # numeric order, not the names' order
    assert latest(checkpoints) == checkpoints / "step_1000000"
    assert resolve_resume("auto", run_dir) == resolve_resume(str(run_dir), run_dir) == checkpoints / "step_1000000"
    assert latest(run_dir, accept=holds_weights) == checkpoints / "step_1000100"
    assert resolve_checkpoint(run_dir) == checkpoints / "step_1000100" / "model"
    assert not is_complete(checkpoints / "step_1000200.tmp") and not holds_weights(checkpoints / "step_1000200.tmp")
    assert latest(run_dir / "nothing") is None


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
