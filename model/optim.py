"""The optimizer and the learning-rate schedule: nanoGPT's `configure_optimizers` and `get_lr`.

AdamW over GPT.param_groups (weight decay on matrices only), and the learning rate of every step. DeepSpeed
(model/engine.py) wraps both without changing their math: ZeRO shards the optimizer's state, and the scheduler
below sets the lr of each step before the optimizer applies it.
"""
from __future__ import annotations

import math

import torch

from model.config import OptimSection, TrainConfig
from model.gpt import GPT


def build_optimizer(model: GPT, optim: OptimSection, fused: bool) -> torch.optim.Optimizer:
    """AdamW over GPT.param_groups: weight decay on matrices, none on biases and LayerNorm gains.

    fused=True is the fastest kernel on CUDA; elsewhere torch's default (foreach) implementation is used.
    """
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(model.param_groups(optim.weight_decay), lr=optim.lr, betas=(optim.beta1, optim.beta2),
                             eps=optim.eps, **extra)


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based).

    cosine: linear warmup to lr, then half a cosine down to min_lr at max_steps (GPT-3, nanoGPT).
    wsd:    warmup-stable-decay (MiniCPM, DeepSeek LLM): linear warmup, constant lr, then a linear decay to
            min_lr over the last `decay_fraction` of the steps. A run can be extended by resuming from a
            checkpoint of the stable phase with a larger max_steps.
    constant: linear warmup, then lr.
    """
    o, max_steps = config.optim, config.train.max_steps
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "cosine":
        span = max(max_steps - o.warmup_steps, 1)
        progress = min((step - o.warmup_steps) / span, 1.0)
        return o.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (o.lr - o.min_lr)
    decay_steps = int(round(o.decay_fraction * max_steps))
    decay_start = max_steps - decay_steps
    if step < decay_start or decay_steps == 0:
        return o.lr
    progress = min((step - decay_start) / decay_steps, 1.0)
    return o.lr + progress * (o.min_lr - o.lr)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """learning_rate() as a torch scheduler: DeepSpeed steps it with the optimizer and saves it in checkpoints."""
    base_lr = config.optim.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(step, config) / base_lr)
