"""A checkpoint holding a symbolic link (or a FIFO, a device) anywhere is refused before anything in it is loaded, in
one line naming the link (issue 22: `universal/zero/<name>/` replaced with a link to a folder holding a planted .pt
ran its pickle on resume, because the files were checked with Path.rglob, which does not enter linked folders,
while DeepSpeed's universal loader lists the folder itself). Both `--resume auto` and `--resume PATH` refuse; so does
a checkpoint saved before checkpoint_files.json existed. The whole resume: tests/integration/model/test_checkpoint_links.py."""
import json
import os
from pathlib import Path

import pytest

from model.checkpoint.layout import CheckpointError, verify
from model.checkpoint.manager import resolve_resume
from tests.support.checkpoints import make_step


def checkpoint(run: Path, listed: bool = True) -> Path:
    step = make_step(run, 4)
    (step / "deepspeed" / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    (step / "rng").mkdir()
    (step / "rng" / "rank_00000.pt").write_bytes(b"rng")
    (step / "universal" / "zero" / "h.0.attn.weight").mkdir(parents=True)
    (step / "universal" / "zero" / "h.0.attn.weight" / "fp32.pt").write_bytes(b"fp32")
    if listed:
        files = {str(p.relative_to(step)): p.stat().st_size for p in step.rglob("*") if p.is_file()
                 and p.relative_to(step).parts[0] != "universal"}
        (step / "checkpoint_files.json").write_text(json.dumps({"files": files}))
    return step


def plant(step: Path, kind: str, outside: Path) -> str:
    """Put one entry that is no plain file or folder into the checkpoint (or make the step folder one)."""
    outside.mkdir(exist_ok=True)
    if kind == "linked parameter folder":  # the case
        target = outside / "h.0.attn.weight"
        target.mkdir()
        (target / "fp32.pt").write_bytes(b"planted")
        victim = step / "universal" / "zero" / "h.0.attn.weight"
        (victim / "fp32.pt").unlink()
        victim.rmdir()
        os.symlink(target, victim)
        return "universal/zero/h.0.attn.weight"
    if kind == "linked file":  # same size as the file it replaces: checkpoint_files.json alone would pass it
        (outside / "rng.pt").write_bytes(b"RNG")
        (step / "rng" / "rank_00000.pt").unlink()
        os.symlink(outside / "rng.pt", step / "rng" / "rank_00000.pt")
        return "rng/rank_00000.pt"
    if kind == "linked model folder":
        os.rename(step / "model", outside / "model")
        os.symlink(outside / "model", step / "model")
        return "model"
    if kind == "FIFO":
        os.mkfifo(step / "deepspeed" / "extra.pt")
        return "deepspeed/extra.pt"
    real = outside / "step_000004"  # the step folder itself is a link to a folder elsewhere
    os.rename(step, real)
    os.symlink(real, step)
    return "step_000004"


KINDS = ["linked parameter folder", "linked file", "linked model folder", "FIFO", "linked step folder"]


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "older checkpoint without a file list"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_checkpoint_holding_a_link_is_refused_however_it_is_named(tmp_path, kind, listed):
    run = tmp_path / "run"
    step = checkpoint(run, listed)
    assert verify(step) is None and resolve_resume("auto", run, say=None) == step  # clean: taken
    name = plant(step, kind, tmp_path / "elsewhere")
    for resume in ("auto", str(step), str(run)):
        with pytest.raises(CheckpointError) as refused:
            resolve_resume(resume, run, say=None)
        message = str(refused.value)
        assert "\n" not in message and name in message and "step_000004" in message, message


def test_a_linked_run_folder_is_fine(tmp_path):
    """Only what is inside a checkpoint must be plain: a run folder on another disk, reached by a link, resumes."""
    step = checkpoint(tmp_path / "real-run")
    os.symlink(tmp_path / "real-run", tmp_path / "run")
    assert resolve_resume("auto", tmp_path / "run", say=None) == tmp_path / "run" / "checkpoints" / step.name
