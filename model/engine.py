"""The DeepSpeed engine: distributed setup, and the DeepSpeed config and engine built from ours.

Everything about parallelism lives here and in cluster/; model/gpt.py knows nothing of it, and the optimizer and
LR schedule the engine wraps are model/optim.py's. The same code runs on CPU (DS_ACCELERATOR=cpu, gloo) and on
CUDA GPUs (NCCL): DeepSpeed's accelerator abstraction picks the device and the communication backend.
"""
from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import torch

from cluster.env import DistEnv
from model.config import TrainConfig, batch_layout
from model.gpt import GPT, count_parameters


def init_distributed(dist_env: DistEnv) -> None:
    """Join the process group described by dist_env (env:// rendezvous; gloo on CPU, NCCL on GPUs)."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    dist_env.apply()
    accelerator = get_accelerator()
    if dist_env.world_size == 1:
        # One process needs no rendezvous: an in-memory store instead of torch's TCPStore, which would open a
        # port on every network interface of the machine. DeepSpeed then finds the group already initialised.
        torch.distributed.init_process_group(accelerator.communication_backend_name(), store=torch.distributed.HashStore(),
                                             rank=0, world_size=1, timeout=timedelta(minutes=30))
    if accelerator.device_name() != "cpu":
        accelerator.set_device(dist_env.local_rank)  # before the first collective: one GPU per rank
    # Quiet DeepSpeed's per-step info lines; warnings still show.
    from deepspeed.utils import logger
    logger.setLevel("WARNING")
    deepspeed.init_distributed(dist_backend=accelerator.communication_backend_name(),
                               timeout=timedelta(minutes=30), verbose=False)


def device() -> torch.device:
    from deepspeed.accelerator import get_accelerator
    return torch.device(get_accelerator().current_device_name())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def deepspeed_config(config: TrainConfig, world_size: int, load_universal: bool = False) -> dict:
    """Our config -> DeepSpeed's JSON config (https://www.deepspeed.ai/docs/config-json/)."""
    t = config.train
    micro_batch, grad_accum = batch_layout(config, world_size)
    zero = {"stage": t.zero_stage}
    if t.zero_stage >= 1:
        # Overlapping the gradient reduction with the backward pass and keeping gradients in one contiguous
        # buffer are DeepSpeed's recommended settings for ZeRO 1/2. Its communication buckets (default 5e8
        # elements, two of them with overlap_comm) are allocated whole and would eat ZeRO-2's gradient savings
        # on GPT-2-sized models: size them like Hugging Face's "auto" (n_embd^2), at least 1M elements so
        # small models do not pay for many tiny collectives, and never larger than the model.
        gpt = config.gpt_config()
        bucket = min(int(5e8), count_parameters(gpt, non_embedding=False), max(gpt.n_embd * gpt.n_embd, 2**20))
        zero.update({"overlap_comm": t.zero_stage in (1, 2), "contiguous_gradients": True,
                     "reduce_bucket_size": bucket, "allgather_bucket_size": bucket})
        if t.zero_stage == 3:
            zero.update({"stage3_prefetch_bucket_size": bucket, "stage3_param_persistence_threshold": 0})
    ds = {
        "train_batch_size": micro_batch * grad_accum * world_size,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": t.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": t.precision == "bf16"},
        "fp16": {"enabled": t.precision == "fp16", "loss_scale": 0,  # 0 = dynamic loss scaling
                 "initial_scale_power": t.fp16_initial_scale_power, "loss_scale_window": 1000,
                 "hysteresis": 2, "min_loss_scale": 1},
        # Our optimizer is torch's AdamW (identical math on CPU and GPU, and what a bare PyTorch loop uses);
        # DeepSpeed's ZeRO wraps it like its own, it just asks for this flag.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,  # we log ourselves
        "wall_clock_breakdown": False,
    }
    if load_universal:
        ds["checkpoint"] = {"load_universal": True}
    return ds


def build_engine(model: GPT, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                 config: TrainConfig, world_size: int, load_universal: bool = False):
    """Wrap model, its optimizer and LR scheduler (model/optim.py) in a DeepSpeed engine. Returns the engine."""
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler,
        config=deepspeed_config(config, world_size, load_universal))
    if config.train.compile:
        engine.compile()
    return engine


def _tensors_in(value, depth: int = 0):
    """Tensors inside nested lists/tuples/dicts (DeepSpeed keeps its buffers in such containers)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item, depth + 1)


def model_state_bytes(engine) -> dict[str, int]:
    """Bytes of model and optimizer state this rank really holds, by kind, each storage counted once.

    params: the module's parameters (under ZeRO-3 only this rank's partition, `ds_tensor`); grads: gradient
    tensors and DeepSpeed's gradient partitions/buckets; optimizer: everything else the optimizer holds - fp32
    master partitions and the AdamW moments. This is what ZeRO shards; activations are not included.
    """
    seen: set[int] = set()

    def size(tensors) -> int:
        total = 0
        for tensor in tensors:
            if tensor is None or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            if storage.nbytes() == 0 or storage.data_ptr() in seen:
                continue
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return total

    parameters = list(engine.module.parameters())
    params = size([p.data for p in parameters] + [getattr(p, "ds_tensor", None) for p in parameters])
    optimizer = engine.optimizer
    inner = getattr(optimizer, "optimizer", optimizer)  # the torch AdamW that ZeRO wraps
    moments = size(_tensors_in([inner.state[p] for p in inner.state]))
    masters = size(_tensors_in([group["params"] for group in inner.param_groups]))
    grad_tensors = [p.grad for p in parameters] + [p.grad for g in inner.param_groups for p in g["params"]]
    grad_tensors += [t for name, value in vars(optimizer).items() if "grad" in name or "ipg" in name
                     for t in _tensors_in(value)]
    grads = size(grad_tensors)
    other = size(t for value in vars(optimizer).values() for t in _tensors_in(value))
    optim = moments + masters + other
    return {"params": params, "grads": grads, "optimizer": optim, "total": params + grads + optim}
