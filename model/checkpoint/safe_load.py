"""Reading checkpoint files without running anything they contain.

A `.pt` file is a pickle, and unpickling can call any function the file names: a run folder shared by someone else
could run a command on `--resume`. Everything the trainer reads is therefore loaded with
`torch.load(weights_only=True)`, PyTorch's restricted unpickler (tensors, containers, numbers, strings), allowing
in addition only the exact DeepSpeed types its checkpoint files hold (`DEEPSPEED_TYPES`, found with
`torch.serialization.get_unsafe_globals_in_checkpoint` on real checkpoints of every ZeRO stage and precision).

- DeepSpeed reads its own files through its checkpoint engine: `use_safe_checkpoint_engine(engine)` gives the
  engine one whose `load` is the restricted one (DeepSpeed's supported way to change how checkpoints are read).
- DeepSpeed's universal-checkpoint loader and its converter (`ds_to_universal`) call `torch.load` themselves:
  `verify_files` loads each file they will read with the restricted unpickler first and refuses the checkpoint
  if one holds anything else.
A file that the restricted unpickler refuses is a one-line `CheckpointError` naming it; nothing in it runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from model.checkpoint.layout import CheckpointError


def deepspeed_types() -> list:
    """The classes DeepSpeed pickles into its checkpoint files besides tensors and plain values."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def load_tensors(path: str | Path, map_location=None):
    """torch.load(path) with the restricted unpickler; a file holding anything else is a CheckpointError."""
    try:
        with torch.serialization.safe_globals(deepspeed_types()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path)
        what = f" (it names {', '.join(unsafe[:3])})" if unsafe else ""
        raise CheckpointError(f"checkpoint file {path} holds pickled objects other than tensors and DeepSpeed's "
                              f"state{what}: refusing to load it, as unpickling it could run code") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"checkpoint file {path} cannot be read: {' '.join(str(e).split())[:200]}") from None


def _unsafe_globals(path) -> list[str]:
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a file too damaged to scan: the caller's message is enough
        return []


def verify_files(paths) -> None:
    """Load each file with the restricted unpickler (and drop it): before code that unpickles them unrestricted."""
    for path in paths:
        load_tensors(path, map_location="cpu")


def use_safe_checkpoint_engine(engine) -> None:
    """Make DeepSpeed's engine read its checkpoint files with the restricted unpickler (its writes are unchanged)."""
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    current = engine.checkpoint_engine
    if not isinstance(current, TorchCheckpointEngine):
        raise CheckpointError(f"DeepSpeed uses checkpoint engine {type(current).__name__}; only its torch engine "
                              f"can be made to load safely")

    class SafeTorchCheckpointEngine(type(current)):
        def load(self, path: str, map_location=None):
            return load_tensors(path, map_location=map_location)

    current.__class__ = SafeTorchCheckpointEngine
