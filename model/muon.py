"""Muon for the hidden matrices and AdamW for everything else, as one torch optimizer (`optim.name: muon`).

Muon (Keller Jordan, 2024: https://kellerjordan.github.io/posts/muon/; used by modded-nanogpt and nanochat) treats
a weight matrix as a linear map and takes steps of a fixed size in the spectral norm. For each hidden matrix W with
gradient G, with momentum β (optim.muon_momentum):

    buf = β·buf + (1-β)·G                  momentum, kept in the optimizer state ("momentum_buffer")
    U   = (1-β)·G + β·buf                  Nesterov: the update looks one step ahead along the momentum
    O   = newton_schulz(U)                 ~ the orthogonal factor of U: every singular value moved near 1
    W   = W - lr · sqrt(max(1, rows/cols)) · O

The scale sqrt(max(1, rows/cols)) is Keller Jordan's (KellerJordan/Muon muon.py, modded-nanogpt, nanochat's
muon.py, DeepSpeed's `_aspect_ratio_scale`): with it, muon_lr = 0.02 (nanochat; modded-nanogpt uses 0.05) is the
rate, and no weight decay is applied to these matrices (nanochat's muon.py has none either).
The other groups (embeddings, the output head, norms, biases) take AdamW's update, the same arithmetic as
torch.optim.AdamW's single-tensor path (decoupled weight decay first, then the bias-corrected Adam step).

This module imports torch only. model/optim.py decides which parameter goes where.
"""
from __future__ import annotations

import math

import torch

# The quintic iteration's coefficients (Keller Jordan, modded-nanogpt): chosen to maximise the slope at zero, so
# that 5 steps move even small singular values up. The result is not exactly orthogonal: singular values end in a
# band around 1 (0.68 to 1.13 for a random 192x64 matrix), which trains as well as the exact U·Vᵀ
# (KellerJordan/Muon); only directions far weaker than the whole matrix (below ~1e-3 of its norm) stay short.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def newton_schulz(update: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """The approximate orthogonal factor of a 2-D tensor: for update = U·S·Vᵀ, about U·Vᵀ (singular values near 1).

    Runs in bfloat16 on CUDA (as modded-nanogpt and nanochat do: the iteration is stable there and 2x faster) and
    in float32 elsewhere (CPUs have no fast bf16 matrix units worth the rounding). Returns update's dtype.
    """
    a, b, c = NS_COEFFICIENTS
    x = update.to(torch.bfloat16 if update.is_cuda else torch.float32)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide orientation: x @ x.T is then the smaller square
        x = x.T
    x = x / (x.norm() + 1e-7)  # Frobenius norm >= spectral norm: every singular value now <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x  # p(x) = a·x + b·x³ + c·x⁵ on each singular value
    return (x.T if tall else x).to(update.dtype)


def muon_scale(shape: torch.Size) -> float:
    """sqrt(max(1, rows/cols)): tall matrices (more outputs than inputs) take proportionally larger steps."""
    rows, cols = shape
    return math.sqrt(max(1.0, rows / cols))


class MuonAdamW(torch.optim.Optimizer):
    """Param groups with use_muon=True take Muon's update (2-D tensors only), the others AdamW's.

    Every group follows the same schedule: the LR scheduler scales each group's own base rate (muon_lr for the
    Muon group, lr for the AdamW groups). The state is per parameter, as in torch's optimizers, so it is saved,
    loaded and checked like theirs: momentum_buffer for Muon, step/exp_avg/exp_avg_sq for AdamW.
    """

    def __init__(self, param_groups: list[dict], lr: float, betas: tuple[float, float], eps: float,
                 momentum: float):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0, momentum=momentum, use_muon=False)
        super().__init__(param_groups, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.dim() != 2 for p in group["params"]):
                raise ValueError("MuonAdamW: a use_muon group holds a tensor that is not a matrix (2-D)")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = self._muon if group["use_muon"] else self._adamw
            for p in group["params"]:
                if p.grad is not None:
                    update(p, p.grad, group, self.state[p])
        return loss

    @staticmethod
    def _muon(p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf, beta = state["momentum_buffer"], group["momentum"]
        buf.lerp_(grad, 1 - beta)
        nesterov = grad.lerp(buf, beta)  # a new tensor: the gradient itself stays as DeepSpeed left it
        p.add_(newton_schulz(nesterov), alpha=-group["lr"] * muon_scale(p.shape))

    @staticmethod
    def _adamw(p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        # torch.optim.AdamW's single-tensor arithmetic, operation for operation (torch/optim/adam.py)
        if "step" not in state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state["step"] += 1
        step = state["step"].item()
        if group["weight_decay"] != 0:
            p.mul_(1 - lr * group["weight_decay"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** step))
