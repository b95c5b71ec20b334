"""The Qwen3 model: Llama's block with QK-norm, what nanochat, MiniMind-3 and modded-nanogpt train instead of GPT-2.

    token ids -> token embedding -> n_layer x Block -> final RMSNorm -> lm_head -> logits
    Block = x + attention(RMSNorm(x)), then x + MLP(RMSNorm(x))             (pre-norm, as in GPT-2)

What differs from GPT-2 (model/gpt.py), each one piece below:
  * rotary positions: no position embedding; every query and key is rotated by an angle proportional to its
    position, so a score q.k depends on how far apart the two tokens are, not on where they are. rope_theta sets
    the slowest rotation (Qwen3: 1e6), i.e. how far apart positions can still be told apart.
  * RMSNorm instead of LayerNorm: divide by the root mean square (no mean subtracted, no bias), then a gain.
  * SwiGLU MLP: down(silu(gate(x)) * up(x)), three matrices instead of GELU's two.
  * grouped-query attention (GQA): n_kv_head key/value heads, each shared by n_head / n_kv_head query heads; the
    KV cache of generation is that many times smaller.
  * QK-norm: an RMSNorm on every query and key head, before the rotation, keeps attention logits bounded.
  * no biases, and an output head of its own (untied from the token embedding) unless tie_embeddings is set.

Parameter names and every computation equal Hugging Face's `Qwen3ForCausalLM` (model.layers.0.self_attn.q_proj.weight
...), so an export (model/hf_qwen3.py) copies the tensors and drops the vocabulary padding, nothing else.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from model.gpt import KVCache
from model.model_config import GPTConfig


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dimension, computed in fp32 as Qwen3 does (in bf16 the
    mean of squares loses the small differences)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, head_dim) of the rotation at each of `positions` (T,).

    Dimension i of a head is paired with dimension i + head_dim/2 (Hugging Face's layout, "rotate half"); pair i
    turns by position * theta^(-2i/head_dim) radians: the first pairs fast (short-range order), the last ones
    slowly (long range). Computed in fp32 for every forward pass: cheap, and no buffer to keep in step with the
    device, the dtype or ZeRO-3.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=positions.device) / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim): the same angle for i and i + head_dim/2
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair (x[i], x[i + D/2]) of x (B, H, T, D) by its angle: (a, b) -> (a cos - b sin, b cos + a sin)."""
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (-b, a)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_size
        self.dropout, self.layer = config.dropout, layer
        self.q_proj = nn.Linear(config.n_embd, self.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)  # fewer heads (GQA)
        self.v_proj = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, config.n_embd, bias=False)
        self.o_proj.IS_RESIDUAL_PROJECTION = True  # see Qwen3._init_weights
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)  # QK-norm: one gain vector shared by all heads
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x.size()
        # (B, T, heads * head_dim) -> (B, T, heads, head_dim): normalise each head's vector -> (B, heads, T, head_dim)
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_head, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # positions enter here, and only here
        past = 0
        if kv_cache is not None:  # the cache keeps keys already rotated by their own positions, n_kv_head of them
            past = kv_cache.length
            k, v = kv_cache.update(self.layer, k, v)
        # enable_gqa: query head h reads key/value head h // (n_head / n_kv_head), without copying k and v n times
        options = dict(dropout_p=self.dropout if self.training else 0.0, enable_gqa=self.n_kv_head != self.n_head)
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, **options)
        else:  # new tokens see every cached position and the new ones up to themselves (as in model/gpt.py)
            mask = None if T == 1 else torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **options)
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * self.head_dim)  # heads side by side again
        return self.o_proj(y)


class MLP(nn.Module):
    """SwiGLU (Shazeer 2020, "GLU variants improve Transformer"): down(silu(gate(x)) * up(x)). The gate chooses,
    for every hidden unit, how much of up(x) passes; three matrices of n_embd x intermediate_size."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.mlp_size, bias=False)
        self.up_proj = nn.Linear(config.n_embd, config.mlp_size, bias=False)
        self.down_proj = nn.Linear(config.mlp_size, config.n_embd, bias=False)
        self.down_proj.IS_RESIDUAL_PROJECTION = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class Qwen3(nn.Module):
    # Where the weights' names put the layers and the token embedding (model/checkpoint/weights.py reads these)
    LAYER_PREFIX = "model.layers."
    TOKEN_EMBEDDING = "model.embed_tokens.weight"

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.arch != "qwen3":
            raise ValueError(f"Qwen3 built from a config of arch={config.arch!r}; use model.build.build_model")
        self.config = config
        self.model = nn.ModuleDict(dict(  # "model.": Hugging Face's Qwen3Model inside Qwen3ForCausalLM
            embed_tokens=nn.Embedding(config.padded_vocab_size, config.n_embd),  # token embedding; no positions
            layers=nn.ModuleList([Block(config, layer) for layer in range(config.n_layer)]),
            norm=RMSNorm(config.n_embd, config.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if config.tied:  # one matrix for both, as GPT-2 (and Qwen3's smallest sizes)
            self.model.embed_tokens.weight = self.lm_head.weight
        self.apply(self._init_weights)
        with torch.no_grad():  # rows of the vocabulary padding are never used: start (and export) them as zeros
            self.lm_head.weight[config.vocab_size:].zero_()
            self.model.embed_tokens.weight[config.vocab_size:].zero_()

    def _init_weights(self, module: nn.Module) -> None:
        # As GPT-2 (model/gpt.py): N(0, 0.02), the projections into the residual stream (o_proj, down_proj) scaled
        # by 1/sqrt(2 * n_layer). RMSNorm gains start at 1 (their own init).
        if isinstance(module, nn.Linear):
            std = 0.02 / ((2 * self.config.n_layer) ** 0.5 if getattr(module, "IS_RESIDUAL_PROJECTION", False) else 1)
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                kv_cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, padded_vocab_size) and, with targets (B, T), the mean cross-entropy;
        the same contract as GPT.forward (targets -1 ignored, vocabulary padding at -inf). With a `kv_cache` the
        new tokens sit at positions cache.length, cache.length + 1, ...: their rotations start there."""
        B, T = idx.size()
        past = kv_cache.length if kv_cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens is longer than block_size={self.config.block_size}")
        x = self.model.embed_tokens(idx)  # (B, T, n_embd)
        positions = torch.arange(past, past + T, dtype=torch.long, device=idx.device)
        cos, sin = rotary_cos_sin(positions, self.config.head_size, self.config.rope_theta, x.dtype)  # every layer's
        for layer in self.model.layers:
            if self.config.activation_checkpointing and self.training and kv_cache is None:
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, kv_cache)
        x = self.model.norm(x)
        logits = self.lm_head(x)
        if self.config.padded_vocab_size > self.config.vocab_size:
            with torch.no_grad():  # why in place and outside autograd: GPT.forward
                logits[..., self.config.vocab_size:] = float("-inf")
        if kv_cache is not None:
            kv_cache.length += T
        loss = None
        if targets is not None:  # in fp32, as GPT.forward
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_kv_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config.n_layer, max_len or self.config.block_size)  # it holds n_kv_head heads per layer

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters (a tied embedding/head counted once). non_embedding=True leaves out the token
        embedding when it is a matrix of its own: a lookup, no multiply-adds. Tied, it stays in, as in GPT: it is
        also the output layer's matrix multiply. An untied lm_head always counts: it is a matmul."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and not self.config.tied:
            n -= self.model.embed_tokens.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward), the formula of GPT.flops_per_token: 6*N + 12*L*H*Q*T.

        6*N counts every weight that multiplies: GQA's smaller k_proj/v_proj and SwiGLU's three matrices are in N
        at their real sizes (the elementwise silu(gate) * up, RMSNorm and the rotation are not counted, as GELU and
        LayerNorm are not). The attention term uses the *query* heads H = n_head and the head width Q = head_dim:
        GQA shares keys and values between query heads, but every query head still scores all T positions and sums
        their values.
        """
        cfg = self.config
        return 6 * self.num_parameters(non_embedding=True) + 12 * cfg.n_layer * cfg.n_head * cfg.head_size * seq_len

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Weight decay for matrices (Linear weights, embeddings), none for the RMSNorm gains (GPT.param_groups)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
