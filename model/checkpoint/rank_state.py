"""What a checkpoint holds beside DeepSpeed's own files: each rank's RNG states, and the full fp32 weights.

Both are collected from the live engine and process here; model/checkpoint/manager.py decides where they go on disk.
"""
import random

import numpy as np
import torch


def rng_state() -> dict:
    """Every RNG's state as tensors, ints, floats and tuples only: loadable with torch.load(weights_only=True)."""
    from deepspeed.accelerator import get_accelerator
    accelerator = get_accelerator()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if accelerator.device_name() != "cpu":
        state["accelerator"] = accelerator.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    from deepspeed.accelerator import get_accelerator
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
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
