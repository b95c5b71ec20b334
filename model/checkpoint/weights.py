"""Model weights on disk: one folder holding `model.safetensors` (fp32, our parameter names) and `config.json`.

The trainer writes such a folder inside every checkpoint (`RUN_DIR/checkpoints/step_000200/model/`);
`model.sample`, `model.convert` and anyone else find it with `resolve_checkpoint`, which also accepts the
checkpoint folder or the whole run folder (then the newest checkpoint holding weights, as model.checkpoint.manager
defines it, is used).
"""
import dataclasses
import errno
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from gptstack.files import atomic_write
from gptstack.formats import read_json_object, short
from model.checkpoint.layout import (MODEL_DIR, WEIGHTS_FILE, CheckpointError, checkpoints_dir, holds_steps,
                                     holds_weights, latest)
from model.build import build_model as new_model, model_class, token_embedding
from model.gpt import GPT, GPTConfig, ModelConfigError

CONFIG_FILE = "config.json"
TIED_COPY = "lm_head.weight"  # tied: the same tensor as the token embedding, stored once, tied again on load
LAYER_NUMBER = re.compile(r"^(\d{1,9})\.")  # after the family's LAYER_PREFIX: layer N's tensor (a longer N: not ours)
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few hundred bytes: a bigger one is not ours


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write `tensors` to a safetensors file atomically, marked as PyTorch's (transformers refuses it unmarked).
    safetensors reports a write that failed (a full disk) as its own error: raised here as the OSError it is, so
    that callers handle it with every other failed write (the checkpoint save's full-disk message, convert's line)."""
    try:
        atomic_write(path, lambda temp: save_file(tensors, temp, metadata={"format": "pt"}))
    except SafetensorError as e:
        code = errno.ENOSPC if "os error 28" in str(e) else errno.EIO
        raise OSError(code, os.strerror(code) if code == errno.ENOSPC else " ".join(str(e).split()), str(path)) \
            from None


def save_weights(model: GPT, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write model.safetensors (fp32, CPU) and config.json into `folder` (created if needed), each atomically.

    `state_dict` replaces model.state_dict() when the caller already gathered the full weights (e.g. DeepSpeed
    ZeRO-3's consolidated state dict); its keys must be our parameter names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if state_dict is None else state_dict
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous()
               for name, t in state.items() if name != TIED_COPY or not model.config.tied}
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
    """config.json of a weights folder, every field's type and range checked (GPTConfig); one line if not."""
    config_path = folder / CONFIG_FILE
    values = read_json_object(config_path, CheckpointError, "model config", max_bytes=MAX_CONFIG_BYTES)
    try:
        return GPTConfig.from_dict(values)
    except (ModelConfigError, TypeError) as e:
        raise CheckpointError(f"checkpoint {config_path}: {e}") from None


def weights_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (safetensors dtype, shape) of every tensor in a safetensors file, from its header alone (no tensor
    is read): what load_model compares with config.json before it reads or allocates anything. safetensors itself
    refuses a header that lies (offsets outside the file, overlapping or missing bytes, a size over 100 MB)."""
    try:
        with safe_open(str(path), framework="pt") as file:
            header = {}
            for name in file.keys():
                piece = file.get_slice(name)
                header[name] = (piece.get_dtype(), tuple(piece.get_shape()))
            return header
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {' '.join(str(e).split())[:300]}") from None


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor a weights file of `config` holds (a tied lm_head.weight left out), without building the
    model: one block is built on the meta device and repeated n_layer times, so call it only once n_layer is known
    to be what the file holds (check_fits does)."""
    with torch.device("meta"):
        one_block = new_model(dataclasses.replace(config, n_layer=1))
    prefix = one_block.LAYER_PREFIX
    shapes = {}
    for name, tensor in one_block.state_dict().items():
        if name == TIED_COPY and config.tied:
            continue
        if name.startswith(f"{prefix}0."):
            rest = name[len(f"{prefix}0."):]
            shapes.update({f"{prefix}{layer}.{rest}": tuple(tensor.shape) for layer in range(config.n_layer)})
        else:
            shapes[name] = tuple(tensor.shape)
    return shapes


def check_fits(config: GPTConfig, dtypes: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]],
               source: str | Path) -> None:
    """Refuse (one line naming `source`) weights that are not floating point or that config.json does not
    describe. Runs before the model is built: a config.json claiming 10^9 layers is compared with the layers the
    file holds first, so nothing the size of a wrong config is ever allocated or looped over."""
    for name, dtype in dtypes.items():
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"checkpoint {source}: tensor {name} is {dtype}; model weights are "
                                  f"{', '.join(FLOAT_DTYPES)}")
    # The sizes the file itself shows first (layers, embedding rows and width, positions): after these agree,
    # every size of config.json is one the file holds, and the shapes below are computed from it safely.
    family = model_class(config)
    layers = {int(match.group(1)) for match in (LAYER_NUMBER.match(name.removeprefix(family.LAYER_PREFIX))
                                                for name in shapes if name.startswith(family.LAYER_PREFIX)) if match}
    if config.n_layer != len(layers):
        raise CheckpointError(f"checkpoint {source} holds {len(layers)} layers but its {CONFIG_FILE} says "
                              f"n_layer={config.n_layer}")
    sizes = [(family.TOKEN_EMBEDDING, (config.padded_vocab_size, config.n_embd))]
    if config.arch == "gpt2":
        sizes.append(("transformer.wpe.weight", (config.block_size, config.n_embd)))
    for name, shape in sizes:
        if name not in shapes:
            raise CheckpointError(f"checkpoint {source} does not match its {CONFIG_FILE}: missing {name}")
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f"checkpoint {source}: tensor {name} has shape {tuple(shapes[name])} but "
                                  f"{CONFIG_FILE} implies {shape}")
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        what = (f"missing {', '.join(short(n, 80) for n in missing[:3])}" if missing else
                f"unexpected {', '.join(short(n, 80) for n in unexpected[:3])}")
        raise CheckpointError(f"checkpoint {source} does not match its {CONFIG_FILE}: {what} tensors")
    for name, shape in expected.items():
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f"checkpoint {source}: tensor {name} has shape {tuple(shapes[name])} "
                                  f"but {CONFIG_FILE} implies {shape}")


def check_finite(state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights holding NaN or infinity (one line naming the tensor): they would only sample garbage or
    fail inside the sampler."""
    for name, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"checkpoint {source}: tensor {name} holds {bad:,} NaN or infinite value(s)")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Build the model (either family) that `path` (see resolve_checkpoint) describes, with its weights, in eval
    mode on `device`. config.json and the weights file's header are checked against each other before any tensor
    is read."""
    folder = resolve_checkpoint(path)
    config = load_config(folder)
    weights_path = folder / WEIGHTS_FILE
    header = weights_header(weights_path)
    check_fits(config, {name: dtype for name, (dtype, _) in header.items()},
               {name: shape for name, (_, shape) in header.items()}, weights_path)
    try:
        state = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"checkpoint {weights_path} cannot be read: {' '.join(str(e).split())[:300]}") from None
    return build_model(config, state, source=weights_path).to(device).eval()


def build_model(config: GPTConfig, state: dict[str, torch.Tensor], source: str | Path) -> GPT:
    """A model whose tensors are exactly `state` (our names, a tied lm_head.weight left out, floating point,
    finite), in fp32; `source` names the file in errors. No random initialisation runs, so even gpt2-xl is built in
    moments."""
    dtypes = {name: next((k for k, v in FLOAT_DTYPES.items() if v == t.dtype), str(t.dtype))
              for name, t in state.items()}
    check_fits(config, dtypes, {name: tuple(t.shape) for name, t in state.items()}, source)
    check_finite(state, source)
    state = {name: t.float() for name, t in state.items()}  # our files are fp32; fp16/bf16 imports compute in fp32
    with torch.device("meta"):  # no memory, no random init: every tensor comes from `state`
        model = new_model(config)
    model.load_state_dict(state, strict=False, assign=True)
    if config.tied:  # assign=True replaced the tied Parameter: tie again
        model.lm_head.weight = token_embedding(model).weight
    return model
