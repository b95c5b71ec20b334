"""Model weights on disk: one folder holding `model.safetensors` (fp32, our parameter names) and `config.json`.

The trainer writes such a folder inside every checkpoint (`RUN_DIR/checkpoints/step_000200/model/`);
`model.sample`, `model.convert` and anyone else find it with `resolve_checkpoint`, which also accepts the
checkpoint folder or the whole run folder (then the newest checkpoint holding weights, as model.checkpoint.manager
defines it, is used).
"""
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptstack.files import atomic_write
from model.checkpoint.layout import (MODEL_DIR, WEIGHTS_FILE, CheckpointError, checkpoints_dir, holds_steps,
                                     holds_weights, latest)
from model.gpt import GPT, GPTConfig, ModelConfigError

CONFIG_FILE = "config.json"
TIED_COPY = "lm_head.weight"  # the same tensor as transformer.wte.weight: stored once, tied again on load


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write `tensors` to a safetensors file atomically, marked as PyTorch's (transformers refuses it unmarked)."""
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata={"format": "pt"}))


def save_weights(model: GPT, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write model.safetensors (fp32, CPU) and config.json into `folder` (created if needed), each atomically.

    `state_dict` replaces model.state_dict() when the caller already gathered the full weights (e.g. DeepSpeed
    ZeRO-3's consolidated state dict); its keys must be our parameter names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if state_dict is None else state_dict
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous()
               for name, t in state.items() if name != TIED_COPY}
    save_safetensors(tensors, folder / WEIGHTS_FILE)
    atomic_write(folder / CONFIG_FILE, json.dumps(asdict(model.config), indent=2) + "\n")
    return folder


def resolve_checkpoint(path: str | Path) -> Path:
    """Return the folder holding model.safetensors + config.json that `path` designates.

    Accepted: (1) that folder itself (or its model.safetensors file); (2) a checkpoint folder holding `model/`;
    (3) a run folder holding `checkpoints/step_*` (or the `checkpoints/` folder itself): the highest-numbered
    step whose name does not end in .tmp and that holds model/model.safetensors.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        if path.name != WEIGHTS_FILE:
            raise CheckpointError(f"checkpoint {path} is a file but not {WEIGHTS_FILE}; give its folder")
        path = path.parent
    if path.name.endswith(".tmp"):
        raise CheckpointError(f"checkpoint {path} is unfinished (a name ending in .tmp is still being written)")
    path = checkpoints_dir(path)
    if holds_steps(path):
        newest = latest(path, accept=holds_weights)
        if newest is None:
            raise CheckpointError(f"checkpoint {path} holds no complete step_*/{MODEL_DIR}/{WEIGHTS_FILE}")
        path = newest
    if (path / MODEL_DIR).is_dir():
        path = path / MODEL_DIR
    if not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"checkpoint {path} has no {WEIGHTS_FILE} (expected a weights folder, a checkpoint "
                              f"folder holding {MODEL_DIR}/, or a run folder holding checkpoints/step_*)")
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"checkpoint {path} has {WEIGHTS_FILE} but no {CONFIG_FILE}")
    return path


def load_config(folder: Path) -> GPTConfig:
    config_path = folder / CONFIG_FILE
    try:
        values = json.loads(config_path.read_text())
        return GPTConfig.from_dict(values)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {config_path} is not valid JSON: {e}") from None
    except (ModelConfigError, TypeError) as e:
        raise CheckpointError(f"checkpoint {config_path}: {e}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Build the GPT that `path` (see resolve_checkpoint) describes, with its weights, in eval mode on `device`."""
    folder = resolve_checkpoint(path)
    config = load_config(folder)
    weights_path = folder / WEIGHTS_FILE
    try:
        state = load_file(weights_path, device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"checkpoint {weights_path} cannot be read: {e}") from None
    return build_model(config, state, source=weights_path).to(device).eval()


def build_model(config: GPTConfig, state: dict[str, torch.Tensor], source: str | Path) -> GPT:
    """A GPT whose tensors are exactly `state` (our names, lm_head.weight left out); `source` names the file in
    errors. No random initialisation runs, so even gpt2-xl is built in moments."""
    with torch.device("meta"):  # no memory, no random init: every tensor comes from `state`
        model = GPT(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items() if name != TIED_COPY}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"checkpoint {source} does not match its {CONFIG_FILE}: {what} tensors")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise CheckpointError(f"checkpoint {source}: tensor {name} has shape {tuple(state[name].shape)} "
                                  f"but {CONFIG_FILE} implies {shape}")
    model.load_state_dict(state, strict=False, assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # assign=True replaced the tied Parameter: tie again
    return model
