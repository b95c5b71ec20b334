"""The DeepSpeed engine: distributed setup, and the DeepSpeed config and engine built from ours.

Everything about parallelism lives here and in cluster/; model/gpt.py knows nothing of it, and the optimizer and
LR schedule the engine wraps are model/optim.py's. The same code runs on CPU (DS_ACCELERATOR=cpu, gloo) and on
CUDA GPUs (NCCL): DeepSpeed's accelerator abstraction picks the device and the communication backend.
"""
from __future__ import annotations

import os
import random
import socket
from datetime import timedelta

import numpy as np
import torch

from cluster.env import ClusterEnvError, DistEnv
from model.config import TrainConfig, batch_layout
from model.build import count_parameters
from model.gpt import GPT


def init_distributed(dist_env: DistEnv) -> None:
    """Join the process group described by dist_env (env:// rendezvous; gloo on CPU, NCCL on GPUs)."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    dist_env.apply()  # (gloo pinned to loopback when every rank is on this machine)
    accelerator = get_accelerator()
    timeout = timedelta(minutes=30)
    if dist_env.world_size == 1 and not torch.distributed.is_initialized():
        # One process needs no rendezvous: an in-memory store instead of torch's TCPStore, which would open a
        # port on every network interface of the machine. DeepSpeed then finds the group already initialised.
        # A second Trainer in the same process (bench/bench_train.py runs several side by side) reuses it.
        torch.distributed.init_process_group(accelerator.communication_backend_name(),
                                             store=torch.distributed.HashStore(), rank=0, world_size=1,
                                             timeout=timeout)
    elif (not torch.distributed.is_initialized() and dist_env.on_this_machine
          and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"):
        # Ranks on one machine whose launcher keeps no store (the deepspeed launcher, hand-started ranks): rank 0
        # serves the rendezvous itself, on the loopback address alone (torchrun's agent serves its own store).
        torch.distributed.init_process_group(accelerator.communication_backend_name(),
                                             store=loopback_store(dist_env, timeout), rank=dist_env.rank,
                                             world_size=dist_env.world_size, timeout=timeout)
    if accelerator.device_name() != "cpu":
        accelerator.set_device(dist_env.local_rank)  # before the first collective: one GPU per rank
    # Quiet DeepSpeed's per-step info lines; warnings still show.
    from deepspeed.utils import logger
    logger.setLevel("WARNING")
    deepspeed.init_distributed(dist_backend=accelerator.communication_backend_name(), timeout=timeout,
                               verbose=False)


def loopback_store(dist_env: DistEnv, timeout: timedelta) -> torch.distributed.TCPStore:
    """The rendezvous store of ranks on one machine: rank 0 serves it on MASTER_ADDR:MASTER_PORT (a loopback
    address), the others connect. torch's TCPStore binds its server to every interface whatever address it is
    given; handed a socket that already listens, it serves on that one (master_listen_fd)."""
    host, port = dist_env.master_addr, dist_env.master_port
    if not dist_env.is_main:
        return torch.distributed.TCPStore(host, port, world_size=dist_env.world_size, is_master=False,
                                          timeout=timeout)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a finished run left in TIME_WAIT
        listener.bind((host.strip("[]"), port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise ClusterEnvError(f"MASTER_ADDR:MASTER_PORT {host}:{port}: rank 0 cannot serve the rendezvous there "
                              f"({error.strerror}); another run using the port? choose another master port") from None
    return torch.distributed.TCPStore(host, port, world_size=dist_env.world_size, is_master=True, timeout=timeout,
                                      master_listen_fd=listener.detach())  # the store owns the socket from here


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
        # DeepSpeed's ZeRO wraps it like its own, it just asks for this flag. model/muon.py's MuonAdamW runs at
        # ZeRO 0 only, where DeepSpeed hands it whole matrices (fp32, or bf16/fp16's per-parameter fp32 masters).
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
