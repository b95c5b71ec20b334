"""Checkpoints: what is saved, the commit protocol, keeping the last K, and resuming on any number of ranks.

A checkpoint is one folder, RUN_DIR/checkpoints/step_000200/:

    deepspeed/              DeepSpeed's own checkpoint (module, ZeRO-partitioned fp32 master weights, AdamW
                            moments, LR scheduler, its step counters), one optimizer file per rank
    rng/rank_00000.pt       each rank's RNG states (python, numpy, torch CPU, accelerator)
    model/                  consolidated fp32 weights + config.json (model.weights.save_weights): what
                            model.sample and model.convert read
    trainer_state.json      step, data-loader position (world-size free), world size, ZeRO stage, model shape
    universal/              only after a resume on another rank count: DeepSpeed's universal checkpoint

Commit protocol: every rank writes into step_000200.tmp/, all ranks meet at a barrier, then rank 0 writes
trainer_state.json and renames the folder to step_000200. The rename is atomic, so a folder without .tmp always
holds a complete checkpoint, and a save killed at any point (SIGKILL, node failure, full disk) leaves only a .tmp
folder, which is never taken as valid and is deleted by the next start. Old checkpoints are first renamed to
*.tmp and then deleted, for the same reason.

Different rank count: DeepSpeed partitions the optimizer state by rank (ZeRO), so its checkpoint only loads on
the world size that wrote it. When the world size (or ZeRO stage) differs, rank 0 converts the checkpoint once
with DeepSpeed's own converter (deepspeed.checkpoint.ds_to_universal) into step_N/universal/ - one file per
parameter with its fp32 value and Adam moments - and every rank loads that with `checkpoint.load_universal`,
taking its new partition. The data loader's position is a global sample counter, so the token stream continues
exactly where it stopped, whatever the new world size.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from model.gpt import GPTConfig
from model.weights import WEIGHTS_FILE, CheckpointError, save_weights

STEP_DIR = re.compile(r"^step_(\d{6,})$")
STATE_FILE = "trainer_state.json"
DEEPSPEED_TAG = "deepspeed"
UNIVERSAL_TAG = "universal"
# Fields of GPTConfig that decide the shapes of the weights; the others (dropout, activation checkpointing)
# may change between runs.
SHAPE_FIELDS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "bias", "vocab_multiple")


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def is_valid_checkpoint(path: Path) -> bool:
    """A committed checkpoint: named step_N (no .tmp) and holding the files written before the commit."""
    return (STEP_DIR.match(path.name) is not None and path.is_dir() and (path / STATE_FILE).is_file()
            and (path / DEEPSPEED_TAG).is_dir() and (path / "model" / WEIGHTS_FILE).is_file())


def valid_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Committed checkpoints of a run, oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = [p for p in checkpoints_dir.iterdir() if is_valid_checkpoint(p)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def read_trainer_state(checkpoint: Path) -> dict:
    path = checkpoint / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None


def resolve_resume(resume: str, run_dir: Path) -> Path | None:
    """`--resume auto|none|PATH` -> the checkpoint folder to load, or None for a fresh start."""
    checkpoints_dir = run_dir / "checkpoints"
    if resume == "none":
        existing = valid_checkpoints(checkpoints_dir)
        if existing:
            # Starting over would mix two runs' checkpoints and metrics in one folder and later delete the
            # old ones (keep_last): refuse instead of damaging them.
            raise CheckpointError(f"run folder {run_dir} already holds checkpoints (latest {existing[-1].name}); "
                                  f"use --resume auto to continue it, or another --run-dir for a new run")
        return None
    if resume == "auto":
        existing = valid_checkpoints(checkpoints_dir)
        return existing[-1] if existing else None
    path = Path(resume)
    if not path.exists():
        raise CheckpointError(f"--resume {path}: no such checkpoint")
    if path.name.endswith(".tmp"):
        raise CheckpointError(f"--resume {path}: unfinished checkpoint (a .tmp folder is never valid)")
    if not is_valid_checkpoint(path):
        # A run folder or its checkpoints/ folder: take the latest committed checkpoint in it.
        for folder in (path / "checkpoints", path):
            existing = valid_checkpoints(folder)
            if existing:
                return existing[-1]
        raise CheckpointError(f"--resume {path}: not a checkpoint folder (step_N holding {STATE_FILE}, "
                              f"{DEEPSPEED_TAG}/ and model/{WEIGHTS_FILE}) nor a run folder holding one")
    return path


def check_compatible(checkpoint: Path, gpt_config: GPTConfig, seq_len: int) -> dict:
    """Refuse, before any step, a checkpoint whose model shape differs from the configured one."""
    state = read_trainer_state(checkpoint)
    saved = state.get("model", {})
    wanted = asdict(gpt_config)
    different = [f"{k}={saved.get(k)!r} (config: {wanted[k]!r})" for k in SHAPE_FIELDS if saved.get(k) != wanted[k]]
    if different:
        raise CheckpointError(f"checkpoint {checkpoint} is from another model size: {', '.join(different)}")
    loader = state.get("loader", {})
    if loader.get("seq_len") not in (None, seq_len):
        raise CheckpointError(f"checkpoint {checkpoint} was trained with data.seq_len={loader['seq_len']}, "
                              f"config has {seq_len}: the data stream would not continue")
    return state


def needs_universal(state: dict, world_size: int, zero_stage: int, precision: str) -> bool:
    """True when DeepSpeed's partitioned optimizer files do not fit this run's layout."""
    partitioned = state["zero_stage"] > 0 or state["precision"] == "bf16"  # bf16 stage 0 partitions fp32 masters
    return partitioned and (state["world_size"] != world_size or state["zero_stage"] != zero_stage)


def convert_to_universal(checkpoint: Path) -> Path:
    """Rank 0 only: write step_N/universal/ with DeepSpeed's converter (once; kept for later resumes)."""
    from deepspeed.checkpoint import ds_to_universal

    target = checkpoint / UNIVERSAL_TAG
    if target.is_dir():
        return target
    tmp = checkpoint / f"{UNIVERSAL_TAG}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    workers = max(1, min(4, os.cpu_count() or 1))
    ds_to_universal.main(Namespace(input_folder=str(checkpoint / DEEPSPEED_TAG), output_folder=str(tmp),
                                   num_extract_workers=workers, num_merge_workers=max(1, workers // 2),
                                   keep_temp_folder=False, strict=True, inject_missing_state=True))
    # The converter names its output by tag only through this file; load_checkpoint is given the tag directly.
    os.replace(tmp, target)
    return target


def rng_state() -> dict:
    from deepspeed.accelerator import get_accelerator
    accelerator = get_accelerator()
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if accelerator.device_name() != "cpu":
        state["accelerator"] = accelerator.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    from deepspeed.accelerator import get_accelerator
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "accelerator" in state and get_accelerator().device_name() != "cpu":
        get_accelerator().set_rng_state(state["accelerator"])


def full_fp32_state_dict(engine, keep: bool) -> dict[str, torch.Tensor]:
    """Every parameter's full fp32 value (the optimizer's master copy under bf16/fp16 and ZeRO), on CPU.

    A collective under ZeRO (each rank holds a slice): every rank must call it; only `keep` ranks get the dict.
    """
    from deepspeed.utils import safe_get_full_fp32_param

    state = {}
    for name, param in engine.module.named_parameters():
        full = safe_get_full_fp32_param(param)
        if full is None:  # no ZeRO and fp32: the parameter is its own master copy
            full = param.data
        if keep:
            state[name] = full.detach().to("cpu", torch.float32).clone()
    return state


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    def __init__(self, run_dir: Path, rank: int, world_size: int, keep_last: int):
        self.dir = Path(run_dir) / "checkpoints"
        self.rank, self.world_size, self.keep_last = rank, world_size, keep_last

    def remove_unfinished(self) -> None:
        """Rank 0, at start: delete *.tmp folders left by a save (or a deletion) that was cut short."""
        if self.rank != 0 or not self.dir.is_dir():
            return
        for path in self.dir.iterdir():
            if path.name.endswith(".tmp"):
                shutil.rmtree(path, ignore_errors=True)

    def save(self, engine, step: int, trainer_state: dict) -> Path:
        """Write and commit checkpoint `step` (collective: every rank calls it)."""
        import torch.distributed as dist

        final = self.dir / step_dir_name(step)
        tmp = final.with_name(final.name + ".tmp")
        try:
            if self.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
                (tmp / "rng").mkdir(parents=True)
            dist.barrier()
            engine.save_checkpoint(str(tmp), tag=DEEPSPEED_TAG, save_latest=False,
                                   client_state={"universal_checkpoint_info": {"universal_checkpoint_version": 0.4}})
            torch.save(rng_state(), tmp / "rng" / f"rank_{self.rank:05d}.pt")
            weights = full_fp32_state_dict(engine, keep=self.rank == 0)
            if self.rank == 0:
                save_weights(engine.module, tmp / "model", state_dict=weights)
            dist.barrier()  # every rank has written its part
            if self.rank == 0:
                state = dict(trainer_state, step=step, world_size=self.world_size,
                             model=asdict(engine.module.config), saved=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                _write_json(tmp / STATE_FILE, state)
                if final.exists():  # a stale copy of the same step (e.g. --resume PATH of an older step)
                    doomed = final.with_name(final.name + ".old.tmp")
                    os.replace(final, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
                os.replace(tmp, final)  # the commit point
                self._prune()
            dist.barrier()
        except OSError as e:
            raise CheckpointError(f"cannot write checkpoint {tmp}: {e.strerror or e}; "
                                  f"earlier checkpoints are untouched") from None
        return final

    def _prune(self) -> None:
        for old in valid_checkpoints(self.dir)[:-self.keep_last]:
            doomed = old.with_name(old.name + ".tmp")  # invalid first, then deleted: never half a checkpoint
            os.replace(old, doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def load(self, engine, checkpoint: Path, universal: bool) -> dict:
        """Load DeepSpeed state (or its universal form) and this rank's RNG; return trainer_state.json."""
        state = read_trainer_state(checkpoint)
        tag = UNIVERSAL_TAG if universal else DEEPSPEED_TAG
        inner = getattr(engine.optimizer, "optimizer", engine.optimizer)  # the torch AdamW inside ZeRO
        configured = [{k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr")}
                      for group in inner.param_groups]
        load_path, _ = engine.load_checkpoint(str(checkpoint), tag=tag, load_module_strict=True,
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
        if load_path is None:
            raise CheckpointError(f"checkpoint {checkpoint / tag}: DeepSpeed could not load it")
        if universal:
            # DeepSpeed 0.19.8's ZeRO-3 universal load gives every parameter group the first group's
            # hyperparameters (weight decay 0.1 on biases and LayerNorms too): put back the configured ones.
            for group, hyperparameters in zip(inner.param_groups, configured):
                group.update(hyperparameters)
        rng_file = checkpoint / "rng" / f"rank_{self.rank:05d}.pt"
        if state["world_size"] == self.world_size and rng_file.is_file():
            set_rng_state(torch.load(rng_file, weights_only=False))
        return state
