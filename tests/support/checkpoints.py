"""Checkpoint folders with only their layout (empty files), for the tests of which step counts as the latest."""
from pathlib import Path

from model.checkpoint.layout import step_dir_name


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


def checkpoint_ladder(run: Path) -> Path:
    """Complete checkpoints at 999_999 and 1_000_000 (past the 6-digit padding), newer ones that are not."""
    make_step(run, 999_999)
    make_step(run, 1_000_000)
    make_step(run, 1_000_100, parts=("model",))  # weights only: readable by model.sample, not resumable
    make_step(run, 1_000_200, suffix=".tmp")  # a save cut short
    make_step(run, 1_000_300, parts=("state", "deepspeed"))  # no weights
    (run / "checkpoints" / "step_1000400.old.tmp").mkdir()
    return run
