"""The optimizer and the learning-rate schedule: nanoGPT's `configure_optimizers` and `get_lr`.

optim.name=adamw: AdamW over the model's param_groups (weight decay on matrices only). optim.name=muon: Muon for
the hidden matrices and AdamW for the rest (model/muon.py), split here. And the learning rate of every step.
DeepSpeed (model/engine.py) wraps both without changing their math: ZeRO shards AdamW's state, and the scheduler
below sets the lr of each step before the optimizer applies it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from model.config import OptimSection, TrainConfig
from model.muon import MuonAdamW


def build_optimizer(model: nn.Module, optim: OptimSection, fused: bool) -> torch.optim.Optimizer:
    """AdamW over model.param_groups: weight decay on matrices, none on biases and norm gains; or, with
    optim.name=muon, MuonAdamW over split_parameters(model).

    fused=True is the fastest AdamW kernel on CUDA; elsewhere torch's default implementation is used.
    """
    if optim.name == "muon":
        return MuonAdamW(split_parameters(model, optim), lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps,
                         momentum=optim.muon_momentum)
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(model.param_groups(optim.weight_decay), lr=optim.lr, betas=(optim.beta1, optim.beta2),
                             eps=optim.eps, **extra)


def split_parameters(model: nn.Module, optim: OptimSection) -> list[dict]:
    """Muon's group first (every hidden matrix, rate muon_lr, no weight decay), then the model's own param_groups
    without those matrices, for AdamW at rate lr.

    Hidden matrices: the 2-D parameters other than an nn.Embedding's weight (the tokens', GPT-2's positions') and the
    output head's (model.lm_head). Chosen by identity, so GPT-2's head, tied to the token embedding, is one parameter
    and goes to AdamW once. Embeddings and the head are lookups and a classifier rather than maps between hidden
    states, which is where Muon's orthogonal steps help (Keller Jordan; nanochat and modded-nanogpt split so too).
    """
    adamw_matrices = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)} | {id(model.lm_head.weight)}
    groups = model.param_groups(optim.weight_decay)
    hidden = [p for group in groups for p in group["params"] if p.dim() == 2 and id(p) not in adamw_matrices]
    chosen = {id(p) for p in hidden}
    rest = [dict(group, params=[p for p in group["params"] if id(p) not in chosen], lr=optim.lr, use_muon=False)
            for group in groups]
    return [{"params": hidden, "lr": optim.muon_lr, "weight_decay": 0.0, "use_muon": True}] + \
        [group for group in rest if group["params"]]


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
    """learning_rate() as a torch scheduler: DeepSpeed steps it with the optimizer and saves it in checkpoints.
    It scales each group's own base rate, so Muon's group (muon_lr) follows the same schedule as lr."""
    base_lr = config.optim.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(step, config) / base_lr)
