"""LoRA (Hu et al. 2021) for `gptstack sft --set sft.lora_rank=R`: low-rank adapters on the attention and MLP
matrices, the base frozen. Our own ~60 lines rather than peft: peft wraps the model in a PeftModel whose parameter
names and forward signature the trainer, DeepSpeed's checkpoints and our weights files would all have to learn;
here a LoRALinear keeps its base's `weight`/`bias` names and the model stays the family's own class.

    y = x W^T + b + (alpha / r) * (x A^T) B^T        A: (r, in), random (Kaiming, as peft);  B: (out, r), zeros

so training starts exactly at the base model. What is saved: DeepSpeed's state holds the adapters (a resume
continues them exactly); the checkpoint's model/ holds the MERGED weights W + (alpha/r) B A, a plain model of the
family that sample, chat, serve and convert --to-hf read with nothing to know about LoRA (merged_state); and
RUN_DIR/lora_adapters.safetensors holds the adapters alone (save_adapters), the small file to share.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoint.weights import save_safetensors

# which nn.Linear of a block is which, in both families (gpt2: attn.c_attn/c_proj, mlp.c_fc/c_proj; qwen3:
# self_attn.q/k/v/o_proj, mlp.gate/up/down_proj); the output head is never adapted
TARGET_PARTS = {"attention": (".attn.", ".self_attn."), "mlp": (".mlp.",)}
SUFFIXES = (".lora_A", ".lora_B", ".lora_scale", ".row_delta", ".row_ids")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # same names as the nn.Linear it replaces: the checkpoint's keys stay ours
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank))
        # a parameter (frozen) rather than a buffer: the consolidated weights hold every parameter, and so merge
        # 1-D: DeepSpeed broadcasts every parameter as bytes, which a 0-D tensor cannot be viewed as
        self.lora_scale = nn.Parameter(torch.tensor([alpha / rank]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.lora_scale


class RowDelta(nn.Module):
    """The token embedding or the output head, frozen, plus a trainable delta for a few rows: the chat markers. They
    never occurred in pretraining (GPT-2's are padding rows, zeros; a trained tokenizer's reserved rows were never
    fed), so a frozen head could not learn to say <|im_end|> nor a frozen embedding to read <|im_start|>. Merged,
    the delta is added to those rows of the weight."""

    def __init__(self, base: nn.Module, delta: nn.Parameter, row_ids: nn.Parameter):
        super().__init__()
        self.weight = base.weight  # the base's name: checkpoints keep our keys
        self.bias = getattr(base, "bias", None)
        self.row_delta, self.row_ids = delta, row_ids
        self.is_head = isinstance(base, nn.Linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.row_ids.long()
        if self.is_head:
            return F.linear(x, self.weight, self.bias).index_add(-1, rows, F.linear(x, self.row_delta))
        out = F.embedding(x, self.weight)
        for i in range(len(rows)):  # a handful of rows: a mask each, no (vocab x width) tensor
            out = out + (x == rows[i]).unsqueeze(-1).to(out.dtype) * self.row_delta[i]
        return out


def add_lora(model: nn.Module, rank: int, alpha: float, targets: list[str], rows: list[int] = ()) -> list[str]:
    """Freeze every parameter of `model`, put adapters on the target matrices of its blocks (and a row delta on the
    embedding and head for `rows`, the chat markers); the adapted matrices' names."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parts = tuple(part for target in targets for part in TARGET_PARTS[target])
    chosen = [name for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and name.startswith(model.LAYER_PREFIX)
              and any(part in f".{name}." for part in parts)]
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    if rows:
        row_ids = nn.Parameter(torch.tensor([float(r) for r in rows]), requires_grad=False)
        embedding_name = model.TOKEN_EMBEDDING.removesuffix(".weight")
        parent_name, _, child = embedding_name.rpartition(".")
        embedding = model.get_submodule(embedding_name)
        delta = nn.Parameter(torch.zeros(len(rows), embedding.weight.shape[1]))
        setattr(model.get_submodule(parent_name), child, RowDelta(embedding, delta, row_ids))
        tied = model.lm_head.weight is embedding.weight  # one matrix, one delta (and one name: the embedding's)
        if tied:
            model.lm_head = RowDelta(model.lm_head, delta, row_ids)
        else:  # parameters of its own, under its own names (a shared one would be named once, the embedding's)
            model.lm_head = RowDelta(model.lm_head, nn.Parameter(torch.zeros(len(rows), model.lm_head.weight.shape[1])),
                                     nn.Parameter(row_ids.detach().clone(), requires_grad=False))
    # the family's groups split trainable parameters by shape; with only adapters left the no-decay group is
    # empty, and DeepSpeed drops an empty group (the LR scheduler would then count one group too many)
    family_groups = model.param_groups
    model.param_groups = lambda weight_decay: [g for g in family_groups(weight_decay) if g["params"]]
    return chosen


def merged_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A consolidated state dict with adapters -> the family's own keys, W + scale * B A (fp32)."""
    merged = {name: t for name, t in state.items() if not name.endswith(SUFFIXES)}
    for name in state:
        if name.endswith(".row_delta"):  # a tied head's delta is the embedding's: one name, added once
            module = name.removesuffix(".row_delta")
            weight = merged[f"{module}.weight"].float().clone()
            weight[state[f"{module}.row_ids"].long()] += state[name].float()
            merged[f"{module}.weight"] = weight
        if name.endswith(".lora_A"):
            module = name.removesuffix(".lora_A")
            delta = state[f"{module}.lora_B"].float() @ state[name].float()
            merged[f"{module}.weight"] = merged[f"{module}.weight"].float() + state[f"{module}.lora_scale"] * delta
    return merged


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().to("cpu", torch.float32).contiguous() for name, p in model.named_parameters()
            if name.endswith(SUFFIXES)}


def save_adapters(model: nn.Module, path: Path) -> int:
    """The adapters alone (ZeRO 0 or 1/2: every rank holds whole parameters); returns the file's bytes."""
    save_safetensors(adapter_state(model), Path(path))
    return Path(path).stat().st_size
