"""Checkpoints: when to save, the commit protocol, keeping the last K, and resuming on any number of ranks.

The folder's layout, and which checkpoint counts, is model/checkpoint/layout.py.

Schedule: `CheckpointManager.should_save` - every `checkpoint.every` steps, at the last step, and when a run
stops early (a signal); never twice for one step.

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

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from gptstack.cli_args import ArgumentParser
from gptstack.files import atomic_write, fsync_dir
from gptstack.formats import short
from model.checkpoint.layout import (CHECKPOINTS_DIR, DEEPSPEED_TAG, FILES_LIST, MODEL_DIR, RESUME_FIELDS, RNG_DIR,
                                     STATE_FILE, UNIVERSAL_TAG, WEIGHTS_FILE, CheckpointError, committed,
                                     is_complete, latest, list_files, newest_verified, read_trainer_state,
                                     step_dir_name, step_number, verify)
from model.checkpoint.rank_state import full_fp32_state_dict, rng_state, set_rng_state
from model.checkpoint.safe_load import load_tensors, use_safe_checkpoint_engine, verify_files
from model.checkpoint.weights import save_weights
from model.gpt import GPTConfig, ModelConfigError


def resolve_resume(resume: str, run_dir: Path, say: Callable[[str], None] | None = print) -> Path | None:
    """`--resume auto|none|PATH` -> the checkpoint folder to load, or None for a fresh start. auto takes the newest
    checkpoint that verifies (`say`ing which it skipped and why); a PATH that does not verify is refused."""
    if resume == "none":
        existing = latest(run_dir)
        if existing is not None:
            # Starting over would mix two runs' checkpoints and metrics in one folder and later delete the
            # old ones (keep_last): refuse instead of damaging them.
            raise CheckpointError(f"run folder {run_dir} already holds checkpoints (latest {existing.name}); "
                                  f"use --resume auto to continue it, or another --run-dir for a new run")
        return None
    if resume == "auto":
        return newest_verified(run_dir, say=say)
    path = Path(resume)
    if not path.exists():
        raise CheckpointError(f"--resume {path}: no such checkpoint")
    if path.name.endswith(".tmp"):
        raise CheckpointError(f"--resume {path}: unfinished checkpoint (a .tmp folder is never valid)")
    if not is_complete(path):
        # A run folder or its checkpoints/ folder: take the latest committed checkpoint in it.
        found = latest(path)
        if found is None:
            raise CheckpointError(f"--resume {path}: not a checkpoint folder (step_N holding {STATE_FILE}, "
                                  f"{DEEPSPEED_TAG}/ and {MODEL_DIR}/{WEIGHTS_FILE}) nor a run folder holding one")
        path = found
    problem = verify(path)
    if problem is not None:
        raise CheckpointError(f"--resume {path}: damaged checkpoint: {problem}")
    return path


def check_compatible(checkpoint: Path, gpt_config: GPTConfig, seq_len: int, optim_name: str = "adamw") -> dict:
    """Refuse, before any step, a checkpoint whose model shape or optimizer (optim.name) differs from the configured
    one (its trainer_state.json validated, every field a resume reads present)."""
    state = read_trainer_state(checkpoint, RESUME_FIELDS)
    saved_values = state.get("model", {})
    try:  # a checkpoint from before the qwen3 family records no arch & co: the defaults, GPT-2's, are what it holds
        saved = GPTConfig.from_dict({k: v for k, v in saved_values.items() if k in asdict(gpt_config)}).shape()
    except (ModelConfigError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint}: {STATE_FILE}: {e}") from None
    wanted = gpt_config.shape()
    if saved["arch"] != wanted["arch"]:
        raise CheckpointError(f"checkpoint {checkpoint} holds a {saved['arch']} model but the config builds "
                              f"{wanted['arch']} (model.arch): a run continues only in its own model family")
    saved_optim = state.get("optim", "adamw")  # written before optim.name existed: AdamW's state
    if saved_optim != optim_name:  # the other optimizer's state has other groups and fields: it cannot load
        shown = saved_optim if saved_optim in ("adamw", "muon") else short(saved_optim)
        raise CheckpointError(f"checkpoint {checkpoint} holds the optimizer state of optim.name={shown}, the config "
                              f"has optim.name={optim_name}: a run continues with its own optimizer")
    different = [f"{k}={saved[k]!r} (config: {wanted[k]!r})" for k in wanted if saved[k] != wanted[k]]
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
    verify_files(sorted((checkpoint / DEEPSPEED_TAG).glob("*.pt")))  # the converter unpickles them unrestricted
    tmp = checkpoint / f"{UNIVERSAL_TAG}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    workers = max(1, min(4, os.cpu_count() or 1))
    ds_to_universal.main(argparse.Namespace(
        input_folder=str(checkpoint / DEEPSPEED_TAG), output_folder=str(tmp), num_extract_workers=workers,
        num_merge_workers=max(1, workers // 2), keep_temp_folder=False, strict=True, inject_missing_state=True))
    # The converter names its output by tag only through this file; load_checkpoint is given the tag directly.
    os.replace(tmp, target)
    fsync_dir(checkpoint)
    return target


class CheckpointManager:
    """A run's checkpoints/ folder: when to save (the schedule), saving, loading, and keeping the last K."""

    def __init__(self, run_dir: Path, rank: int, world_size: int, keep_last: int, every: int, last_step: int):
        self.dir = Path(run_dir) / CHECKPOINTS_DIR
        self.rank, self.world_size, self.keep_last = rank, world_size, keep_last
        self.every, self.last_step = every, last_step
        self.saved_step: int | None = None  # the step whose checkpoint exists already (saved or resumed from)
        self.tokenizer = None  # the run's Tokenizer: a trained one's folder is copied into every checkpoint's model/
        self.export_weights = None  # state dict -> what model/ holds (model.sft's LoRA merges its adapters)

    def should_save(self, step: int, ending: bool = False) -> bool:
        """Save after step `step`? Every `every` steps (0: never in between), at the last step, and whenever
        the run ends there (`ending`: a stop on request, or the loop is over); never twice for one step."""
        if step == self.saved_step:
            return False
        return ending or step >= self.last_step or (self.every > 0 and step % self.every == 0)

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
                (tmp / RNG_DIR).mkdir(parents=True)
            dist.barrier()
            engine.save_checkpoint(str(tmp), tag=DEEPSPEED_TAG, save_latest=False,
                                   client_state={"universal_checkpoint_info": {"universal_checkpoint_version": 0.4}})
            torch.save(rng_state(), self._rng_file(tmp))
            weights = full_fp32_state_dict(engine, keep=self.rank == 0)
            if self.rank == 0:
                if self.export_weights is not None:  # LoRA: model/ holds the merged weights (model/chat/lora.py)
                    weights = self.export_weights(weights)
                save_weights(engine.module, tmp / MODEL_DIR, state_dict=weights)
                if self.tokenizer is not None:  # model.sample, HellaSwag and model.convert find it beside the weights
                    self.tokenizer.copy_into(tmp / MODEL_DIR)
            dist.barrier()  # every rank has written its part
            if self.rank == 0:
                state = dict(trainer_state, step=step, world_size=self.world_size,
                             model=asdict(engine.module.config), saved=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2) + "\n")
                # Last before the commit: every file with its size, so a later truncation is found (verify()).
                atomic_write(tmp / FILES_LIST, json.dumps({"files": list_files(tmp)}, indent=1) + "\n")
                if final.exists():  # a stale copy of the same step (e.g. --resume PATH of an older step)
                    doomed = final.with_name(final.name + ".old.tmp")
                    os.replace(final, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
                os.replace(tmp, final)  # the commit point
                fsync_dir(self.dir)  # the rename itself on disk before older checkpoints are deleted
                self._prune()
            dist.barrier()
        except (OSError, RuntimeError) as e:
            # torch.save reports a full disk as a RuntimeError of its zip writer ("iostream error", "unexpected
            # pos"): recognise it by the space left, and let any other RuntimeError keep its traceback.
            free = shutil.disk_usage(self.dir).free if self.dir.is_dir() else 0
            full = getattr(e, "errno", None) in (28, 122) or free < 64 * 2**20  # ENOSPC, EDQUOT
            if isinstance(e, RuntimeError) and not full:
                raise
            if self.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)  # the unfinished save gives its space back
            reason = "no space left on device" if full else (e.strerror or str(e))
            raise CheckpointError(f"cannot write checkpoint {final}: {reason} ({free / 1e9:.2f} GB free in "
                                  f"{self.dir}); earlier checkpoints are untouched") from None
        self.saved_step = step
        return final

    def _prune(self) -> None:
        for old in committed(self.dir)[:-self.keep_last]:
            doomed = old.with_name(old.name + ".tmp")  # invalid first, then deleted: never half a checkpoint
            os.replace(old, doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def _rng_file(self, checkpoint: Path) -> Path:
        return checkpoint / RNG_DIR / f"rank_{self.rank:05d}.pt"

    def load(self, engine, checkpoint: Path, universal: bool) -> dict:
        """Load DeepSpeed state (or its universal form) and this rank's RNG; return trainer_state.json."""
        state = read_trainer_state(checkpoint)
        tag = UNIVERSAL_TAG if universal else DEEPSPEED_TAG
        inner = getattr(engine.optimizer, "optimizer", engine.optimizer)  # the torch AdamW inside ZeRO
        configured = [{k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr")}
                      for group in inner.param_groups]
        # Nothing a checkpoint holds may run: DeepSpeed reads its files through a restricted-unpickler engine;
        # the universal loader calls torch.load itself, so its files are checked the same way first.
        use_safe_checkpoint_engine(engine)
        if universal:
            verify_files(sorted((checkpoint / UNIVERSAL_TAG).rglob("*.pt")))
        load_path, _ = engine.load_checkpoint(str(checkpoint), tag=tag, load_module_strict=True,
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
        if load_path is None:
            raise CheckpointError(f"checkpoint {checkpoint / tag}: DeepSpeed could not load it")
        if universal:
            # DeepSpeed 0.19.8's ZeRO-3 universal load gives every parameter group the first group's
            # hyperparameters (weight decay 0.1 on biases and LayerNorms too): put back the configured ones.
            for group, hyperparameters in zip(inner.param_groups, configured):
                group.update(hyperparameters)
        rng_file = self._rng_file(checkpoint)
        if state["world_size"] == self.world_size and rng_file.is_file():
            set_rng_state(load_tensors(rng_file))
        self.saved_step = state["step"]
        return state


def main(argv: list[str] | None = None) -> int:
    """`python -m model.checkpoint latest RUN_DIR`: the checkpoint `--resume auto` would continue from."""
    parser = ArgumentParser(prog="python -m model.checkpoint",
                            epilog="example:\n  python -m model.checkpoint latest runs/tiny --step",
                                     description="Questions about a training run's checkpoints (for job scripts).")
    commands = parser.add_subparsers(dest="command", required=True)
    latest_parser = commands.add_parser(
        "latest", help="print the newest complete checkpoint of RUN_DIR (what --resume auto continues from); "
                       "print nothing and exit 1 when there is none")
    latest_parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                               help="a run folder (or its checkpoints/ folder)")
    latest_parser.add_argument("--step", action="store_true", help="print its step number instead of its path")
    args = parser.parse_args(argv)
    found = latest(args.run_dir)
    if found is None:
        return 1
    print(step_number(found) if args.step else found)
    return 0

