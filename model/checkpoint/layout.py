"""Where a checkpoint's parts are and which checkpoint counts: the names and predicates every other part reads.

A checkpoint is one folder, RUN_DIR/checkpoints/step_000200/ (model/checkpoint/manager.py writes it):

    deepspeed/              DeepSpeed's own checkpoint (module, ZeRO-partitioned fp32 master weights, AdamW
                            moments, LR scheduler, its step counters), one optimizer file per rank
    rng/rank_00000.pt       each rank's RNG states (python, numpy, torch CPU, accelerator)
    model/                  consolidated fp32 weights + config.json (model.checkpoint.weights.save_weights): what
                            model.sample and model.convert read
    trainer_state.json      step, data-loader position (world-size free), world size, ZeRO stage, model shape
    checkpoint_files.json   every file with its size, written last before the commit (`verify`)
    universal/              only after a resume on another rank count: DeepSpeed's universal checkpoint

Which checkpoint counts: a folder named step_N (never one ending in .tmp) inside RUN_DIR/checkpoints/. Its two
readers need different parts of it, so there are two predicates over the one layout: the trainer resumes only
from a *complete* checkpoint (`is_complete`: trainer_state.json, deepspeed/ and model/), while model.sample and
model.convert need just its weights (`holds_weights`: model/model.safetensors). `latest()` answers both, and
`python -m model.checkpoint latest RUN_DIR` answers slurm/pretrain.sh, so no two of them can disagree about the
latest step. This module imports nothing heavier than the standard library, so every reader may import it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

from gptstack.errors import GPTStackError
from gptstack.files import entry_kind
from gptstack.formats import MAX_SEED, check_value, field, read_json_object, short

CHECKPOINTS_DIR = "checkpoints"
STEP_DIR = re.compile(r"^step_(\d+)$")  # step_000200; a name ending in .tmp is never a finished checkpoint
MODEL_DIR = "model"  # a weights folder (model.checkpoint.weights): what model.sample and model.convert read
WEIGHTS_FILE = "model.safetensors"  # inside MODEL_DIR, beside config.json
STATE_FILE = "trainer_state.json"
DEEPSPEED_TAG = "deepspeed"
UNIVERSAL_TAG = "universal"
RNG_DIR = "rng"
# Fields of GPTConfig that decide the shapes of the weights; the others (dropout, activation checkpointing)
# may change between runs.
SHAPE_FIELDS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "bias", "vocab_multiple")


class CheckpointError(GPTStackError):
    """A checkpoint path that is missing, incomplete, corrupt or does not fit its config."""


# ---- the layout: which folders are checkpoints, which is the latest ------------------------------------------
def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def step_number(path: Path) -> int | None:
    """N of a folder named step_N, else None (a .tmp folder, anything else)."""
    match = STEP_DIR.match(path.name)
    return int(match.group(1)) if match else None


def holds_weights(path: Path) -> bool:
    """A committed checkpoint whose model/ weights can be read (enough for model.sample and model.convert)."""
    return step_number(path) is not None and (path / MODEL_DIR / WEIGHTS_FILE).is_file()


def is_hf_export(path: Path) -> bool:
    """A transformers folder (its config.json names a model_type); our checkpoints' never does."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        return "model_type" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # the loader then says what is wrong with the folder


def is_complete(path: Path) -> bool:
    """A committed checkpoint holding everything written before the commit (enough to resume training)."""
    return holds_weights(path) and (path / STATE_FILE).is_file() and (path / DEEPSPEED_TAG).is_dir()


def checkpoints_dir(folder: Path) -> Path:
    """Where a folder's step_N folders are: RUN_DIR/checkpoints for a run folder, else the folder itself."""
    inner = Path(folder) / CHECKPOINTS_DIR
    return inner if inner.is_dir() else Path(folder)


def holds_steps(folder: Path) -> bool:
    """The folder is a checkpoints folder: it holds step_N folders, finished or not."""
    return any(step_number(p) is not None for p in folder.iterdir())


def committed(folder: Path, accept: Callable[[Path], bool] = is_complete) -> list[Path]:
    """The checkpoints of a run folder (or of its checkpoints/ folder) that `accept` takes, oldest first."""
    folder = checkpoints_dir(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if accept(p)), key=step_number)


def latest(folder: Path, accept: Callable[[Path], bool] = is_complete) -> Path | None:
    """The newest checkpoint of a run folder (or of its checkpoints/ folder) that `accept` takes, or None."""
    found = committed(folder, accept)
    return found[-1] if found else None


def estimated_checkpoint_bytes(num_parameters: int) -> int:
    """fp32 weights + Adam moments in the DeepSpeed checkpoint, plus the consolidated fp32 model/ copy."""
    return num_parameters * 4 * (3 + 1 + 1)  # master + 2 moments, the module copy, model/model.safetensors


FILES_LIST = "checkpoint_files.json"  # every file of the checkpoint with its size, written last before the commit


def list_files(checkpoint: Path) -> dict[str, int]:
    """Relative path -> size in bytes of every file below `checkpoint` (the list itself and universal/ left out:
    universal/ is added later, by a resume on another rank count)."""
    return {str(p.relative_to(checkpoint)): p.stat().st_size for p in sorted(checkpoint.rglob("*"))
            if p.is_file() and p.name != FILES_LIST and p.relative_to(checkpoint).parts[0] != UNIVERSAL_TAG}


def check_no_links(checkpoint: Path) -> None:
    """Refuse a checkpoint that is, or holds anywhere below it, a symbolic link or a special file (a FIFO, a device).

    We never write one, and a link steers what is loaded: DeepSpeed's universal loader lists universal/zero/<name>/
    itself and unpickles what is there, so a linked folder of planted .pt files ran code that a walk with
    Path.rglob (which does not enter linked folders) never checked. Refusing links at all, before anything is
    loaded, leaves nothing for a check and a loader to see differently (deepspeed/, universal/, rng/, model/)."""
    pending = [Path(checkpoint)]
    while pending:
        path = pending.pop()
        kind = entry_kind(path)
        if kind == "folder":
            pending.extend(sorted(path.iterdir(), reverse=True))
        elif kind != "file":
            inner = path.relative_to(checkpoint.parent) if path != checkpoint else Path(checkpoint.name)
            what = f"a {kind}" + (f" (to {os.readlink(path)})" if kind == "symbolic link" else "")
            raise CheckpointError(f"checkpoint {checkpoint}: {inner} is {what}; a checkpoint holds only plain files "
                                  f"and folders, and a link could steer what is unpickled: refusing to load it")


def verify(checkpoint: Path) -> str | None:
    """What is wrong with a committed checkpoint's files (missing, truncated, grown), or None when every file
    listed at its commit is there with its size. Checkpoints written before the list existed are taken as they are.
    A link or special file anywhere in it is not damage but tampering: a CheckpointError (`check_no_links`)."""
    check_no_links(checkpoint)
    path = checkpoint / FILES_LIST
    if not path.is_file():
        return None
    try:
        listed = json.loads(path.read_text())["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        return f"{path} cannot be read ({type(e).__name__})"
    for name, size in listed.items():
        file = checkpoint / name
        if not file.is_file():
            return f"{file} is missing"
        actual = file.stat().st_size
        if actual != size:
            how = "truncated" if actual < size else "changed"
            return f"{file} is {actual:,} bytes, {size:,} when it was saved ({how})"
    return None


def newest_verified(run_dir: Path, say: Callable[[str], None] | None = print) -> Path | None:
    """The newest complete checkpoint whose files verify; each newer one that does not is skipped, and `say`s so.
    None when there is no checkpoint; a CheckpointError when there are some but none verifies."""
    found = committed(run_dir)
    for checkpoint in reversed(found):
        problem = verify(checkpoint)
        if problem is None:
            return checkpoint
        if say:
            say(f"warning: checkpoint {checkpoint} skipped: {problem}")
    if found:
        raise CheckpointError(f"run folder {run_dir}: none of its {len(found)} checkpoint(s) verifies "
                              f"(newest {found[-1].name}); see the warnings above, or --resume none in a new --run-dir")
    return None


def remove_unfinished_saves(run_dir: Path) -> None:
    """Delete *.tmp folders that a save (or a deletion) cut short left in RUN_DIR/checkpoints (rank 0, at start,
    under the run folder's lock and before the free-space check: an unfinished save is space to win back)."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.endswith(".tmp"):
                shutil.rmtree(path, ignore_errors=True)


# ---- trainer_state.json: the one loader, every field's type and range checked before anyone uses it ---------------
RESUME_FIELDS = ("step", "world_size", "zero_stage", "precision", "loader", "model")  # what a resume reads
MAX_STEP = 10**12  # far beyond any run; also bounds what the model card multiplies and formats
MAX_COUNT = 2**62  # samples, tokens, windows: fit an int64 (numpy indexes with them)
MAX_NAME = 4096  # names and paths in the record


def _check_mixture(mixture, where: str) -> None:
    field(mixture, "seed", int, where, CheckpointError, low=0, high=MAX_SEED)
    field(mixture, "shuffle", bool, where, CheckpointError)
    field(mixture, "block", int, where, CheckpointError, low=1, high=MAX_COUNT)
    field(mixture, "phase_start", int, where, CheckpointError, low=0, high=MAX_COUNT)
    for part in ("sources", "parked"):
        entries = field(mixture, part, dict, where, CheckpointError, max_length=10_000,
                        **({"default": {}} if part == "parked" else {}))
        if part == "sources" and not entries:
            raise CheckpointError(f"{where}sources is empty")
        for name, entry in entries.items():
            inner = f"{where}{part}.{short(name, 40)}."
            check_value(entry, dict, inner.rstrip("."), CheckpointError)
            field(entry, "windows", int, inner, CheckpointError, low=1, high=MAX_COUNT)
            field(entry, "consumed", int, inner, CheckpointError, low=0, high=MAX_COUNT)
            if part == "sources":
                field(entry, "weight", float, inner, CheckpointError, low=0, high=1)
                field(entry, "base", int, inner, CheckpointError, low=0, high=MAX_COUNT)


def _check_packing(packing, where: str) -> None:
    """data.packing=bos_aligned's record (model/data/packing.py): the window and each packer's cursor."""
    if field(packing, "mode", str, where, CheckpointError, max_length=16) != "bos_aligned":
        raise CheckpointError(f"{where}mode must be bos_aligned, not {short(packing['mode'])}")
    field(packing, "window", int, where, CheckpointError, low=1, high=2**20)
    field(packing, "block_documents", int, where, CheckpointError, low=1, high=MAX_COUNT)
    cursors = field(packing, "sources", dict, where, CheckpointError, default=None, max_length=10_000)
    for inner, cursor in ([(where, packing)] if cursors is None else
                          [(f"{where}sources.{short(name, 40)}.", entry) for name, entry in cursors.items()]):
        check_value(cursor, dict, inner.rstrip("."), CheckpointError)
        for key in ("documents", "block", "first_row"):
            field(cursor, key, int, inner, CheckpointError, low=0, high=MAX_COUNT)


def _check_trainer_state(state: dict, where: str, required: tuple[str, ...]) -> None:
    """Every field the trainer, the model card and the tokenizer lookup read; `required` must be present."""
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"{where}{', '.join(missing)} missing (not a checkpoint this trainer wrote)")
    checks = {"step": (int, dict(low=0, high=MAX_STEP)), "world_size": (int, dict(low=1, high=2**20)),
              "zero_stage": (int, dict(low=0, high=3)), "precision": (str, dict(max_length=16)),
              "tokens_per_step": (int, dict(low=1, high=MAX_STEP)), "loader": (dict, {}), "model": (dict, {}),
              "tokenizer": ((dict, type(None)), {}), "data_fingerprint": ((str, type(None)), dict(max_length=MAX_NAME)),
              "saved": (str, dict(max_length=MAX_NAME))}
    for key, (kind, bounds) in checks.items():
        field(state, key, kind, where, CheckpointError, default=None, **bounds)
    if state.get("precision") not in (None, "bf16", "fp16", "fp32"):
        raise CheckpointError(f"{where}precision must be bf16, fp16 or fp32, not {short(state['precision'])}")
    loader = state.get("loader")
    if loader is not None:
        inner = f"{where}loader."
        field(loader, "samples_consumed", int, inner, CheckpointError, low=0, high=MAX_COUNT)
        field(loader, "seed", int, inner, CheckpointError, default=None, low=0, high=MAX_SEED)
        field(loader, "shuffle", bool, inner, CheckpointError, default=None)
        field(loader, "seq_len", int, inner, CheckpointError, default=None, low=1, high=2**24)
        field(loader, "windows_per_epoch", int, inner, CheckpointError, default=None, low=0, high=MAX_COUNT)
        field(loader, "split", str, inner, CheckpointError, default=None, max_length=16)
        if "mixture" in loader:
            _check_mixture(check_value(loader["mixture"], dict, f"{inner}mixture", CheckpointError), f"{inner}mixture.")
        if "packing" in loader:
            _check_packing(check_value(loader["packing"], dict, f"{inner}packing", CheckpointError), f"{inner}packing.")
    model = state.get("model")
    if model is not None:
        for key in SHAPE_FIELDS:
            kind, bounds = (bool, {}) if key == "bias" else (int, dict(low=1, high=2**24))
            field(model, key, kind, f"{where}model.", CheckpointError, default=None, **bounds)
    tokenizer = state.get("tokenizer")
    if tokenizer is not None:
        inner = f"{where}tokenizer."
        field(tokenizer, "name", str, inner, CheckpointError, max_length=MAX_NAME)
        field(tokenizer, "vocab_size", int, inner, CheckpointError, low=1, high=2**24)
        field(tokenizer, "eot_token", (int, type(None)), inner, CheckpointError, default=None, low=0, high=2**24)
        field(tokenizer, "sha256", (str, type(None)), inner, CheckpointError, default=None, max_length=64)
        field(tokenizer, "path", str, inner, CheckpointError, default=None, max_length=MAX_NAME)


def read_trainer_state(checkpoint: Path, required: tuple[str, ...] = ("step",)) -> dict:
    """A checkpoint's trainer_state.json, validated: a wrong type, an absurd value or a missing `required` field is
    one CheckpointError naming the file and the field (resume passes RESUME_FIELDS)."""
    path = Path(checkpoint) / STATE_FILE
    state = read_json_object(path, CheckpointError, "trainer state", max_bytes=16 * 2**20)
    _check_trainer_state(state, f"{path}: ", required)
    return state
