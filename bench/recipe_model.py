"""The models between GPT-2 and qwen3 that the recipe ablation (bench/bench_recipe.py) trains: one switch per change.

model/gpt.py (GPT-2) and model/qwen3.py (qwen3) are the two ends; a change alone ("GPT-2 + RoPE") or a prefix of them
("GPT-2 + RoPE + RMSNorm") is neither. `build(config, features)` returns the real class wherever one computes the
wanted model (all switches off: model.gpt.GPT; RoPE, RMSNorm, SwiGLU and QK-norm on: model.qwen3.Qwen3 with the GQA
and head settings), and `MixedGPT` below otherwise. tests/unit/bench/test_recipe_model.py checks that MixedGPT with
every switch off computes GPT's logits and with every switch on Qwen3's, from the same weights: the rows in between
differ from their neighbours only by the switch they name.

Every variant keeps GPT-2's non-embedding parameter count (12 * n_embd^2 per layer): SwiGLU's three matrices get a
hidden width of 8/3 n_embd instead of GELU's 4 n_embd of two, and GQA's smaller key/value projections (half as many
heads) are paid back by a wider MLP (GELU 4.5 n_embd, SwiGLU 3 n_embd: qwen3's own default).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.build import build_model
from model.model_config import GPTConfig
from model.qwen3 import RMSNorm, apply_rotary, rotary_cos_sin

ROPE_THETA = 1e6  # qwen3's default (model/model_config.py)
NORM_EPS = 1e-6


@dataclass(frozen=True)
class Features:
    """The architecture changes from GPT-2 to qwen3, each a switch (the training changes, Muon and aligned batches,
    are the trainer's: optim.name, data.packing)."""
    rope: bool = False  # rotary positions instead of the learned position embedding
    rmsnorm: bool = False  # RMSNorm instead of LayerNorm, and no biases anywhere (neither has one in qwen3)
    swiglu: bool = False  # SwiGLU MLP instead of GELU
    qk_norm: bool = False  # RMSNorm on every query and key head
    gqa: bool = False  # half as many key/value heads as query heads (the MLP widened to keep the parameters)
    untied: bool = False  # an output head of its own instead of the token embedding's transpose

    def names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]


def mlp_width(n_embd: int, features: Features) -> int:
    """The MLP's hidden width that keeps a layer at 12 * n_embd^2 weights (attention: 4 n_embd^2, 3 with GQA)."""
    mlp_weights = (9 if features.gqa else 8) * n_embd * n_embd
    return round(mlp_weights / ((3 if features.swiglu else 2) * n_embd))


def qwen3_config(base: GPTConfig, features: Features) -> GPTConfig:
    """The qwen3 config of `features` (RoPE, RMSNorm, SwiGLU and QK-norm on) at `base`'s size."""
    kv_heads = base.n_head // 2 if features.gqa else base.n_head
    return dataclasses.replace(base, arch="qwen3", bias=False, n_kv_head=kv_heads,
                               intermediate_size=mlp_width(base.n_embd, features), tie_embeddings=not features.untied,
                               rope_theta=ROPE_THETA, rms_norm_eps=NORM_EPS)


def build(base: GPTConfig, features: Features) -> nn.Module:
    """The model of `features` at the size of `base` (a gpt2 config): GPT, Qwen3 or MixedGPT."""
    base = dataclasses.replace(base, arch="gpt2", bias=True)
    if features == Features():
        return build_model(base)
    if features.rope and features.rmsnorm and features.swiglu and features.qk_norm:
        return build_model(qwen3_config(base, features))
    return MixedGPT(base, features)


class Attention(nn.Module):
    def __init__(self, config: GPTConfig, features: Features, layer: int):
        super().__init__()
        d, self.n_head = config.n_embd, config.n_head
        self.n_kv_head = config.n_head // 2 if features.gqa else config.n_head
        self.head_dim, self.rope, bias = d // config.n_head, features.rope, not features.rmsnorm
        self.q_proj = nn.Linear(d, self.n_head * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.n_kv_head * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.n_kv_head * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, d, bias=bias)
        self.o_proj.IS_RESIDUAL_PROJECTION = True
        self.q_norm = RMSNorm(self.head_dim, NORM_EPS) if features.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim, NORM_EPS) if features.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.size()
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_head, self.head_dim)).transpose(1, 2)  # (B, H, T, D)
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.rope:
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_head != self.n_head)
        return self.o_proj(y.transpose(1, 2).contiguous().view(B, T, self.n_head * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig, features: Features):
        super().__init__()
        d, hidden, bias = config.n_embd, mlp_width(config.n_embd, features), not features.rmsnorm
        self.swiglu = features.swiglu
        self.gate_proj = nn.Linear(d, hidden, bias=bias) if features.swiglu else None
        self.up_proj = nn.Linear(d, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, d, bias=bias)
        self.down_proj.IS_RESIDUAL_PROJECTION = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))  # GPT-2's GELU


def norm(config: GPTConfig, features: Features, dim: int) -> nn.Module:
    return RMSNorm(dim, NORM_EPS) if features.rmsnorm else nn.LayerNorm(dim, bias=True)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, features: Features, layer: int):
        super().__init__()
        self.input_layernorm = norm(config, features, config.n_embd)
        self.self_attn = Attention(config, features, layer)
        self.post_attention_layernorm = norm(config, features, config.n_embd)
        self.mlp = MLP(config, features)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class MixedGPT(nn.Module):
    """A pre-norm decoder with each change of `Features` switchable; qwen3's parameter names. Training only (no KV
    cache): the trainer needs forward, num_parameters, flops_per_token, param_groups and the lm_head."""
    LAYER_PREFIX = "model.layers."
    TOKEN_EMBEDDING = "model.embed_tokens.weight"

    def __init__(self, config: GPTConfig, features: Features):
        super().__init__()
        self.config, self.features = config, features
        modules = dict(embed_tokens=nn.Embedding(config.padded_vocab_size, config.n_embd),
                       layers=nn.ModuleList([Block(config, features, i) for i in range(config.n_layer)]),
                       norm=norm(config, features, config.n_embd))
        if not features.rope:
            modules["embed_positions"] = nn.Embedding(config.block_size, config.n_embd)  # GPT-2's wpe
        self.model = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if not features.untied:
            self.model.embed_tokens.weight = self.lm_head.weight
        self.apply(self._init_weights)
        with torch.no_grad():
            self.lm_head.weight[config.vocab_size:].zero_()
            self.model.embed_tokens.weight[config.vocab_size:].zero_()

    def _init_weights(self, module: nn.Module) -> None:  # GPT-2's, as both real families use
        if isinstance(module, nn.Linear):
            std = 0.02 / (math.sqrt(2 * self.config.n_layer) if getattr(module, "IS_RESIDUAL_PROJECTION", False) else 1)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None):
        if kv_cache is not None:
            raise ValueError("MixedGPT is for training runs only: no KV cache")
        B, T = idx.size()
        x = self.model.embed_tokens(idx)
        positions = torch.arange(T, device=idx.device)
        cos = sin = None
        if self.features.rope:
            cos, sin = rotary_cos_sin(positions, self.config.n_embd // self.config.n_head, ROPE_THETA, x.dtype)
        else:
            x = x + self.model.embed_positions(positions)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))
        if self.config.padded_vocab_size > self.config.vocab_size:
            with torch.no_grad():  # as GPT.forward: the padding rows get probability 0
                logits[..., self.config.vocab_size:] = float("-inf")
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def num_parameters(self, non_embedding: bool = True) -> int:
        """As the real families count: lookups (position embedding, an untied input embedding) left out."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if not self.features.rope:
                n -= self.model.embed_positions.weight.numel()
            if self.features.untied:
                n -= self.model.embed_tokens.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """6N + 12 L H Q T, the formula of GPT.flops_per_token and Qwen3.flops_per_token."""
        c = self.config
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_embd * seq_len

    def param_groups(self, weight_decay: float) -> list[dict]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
