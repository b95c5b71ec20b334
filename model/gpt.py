"""The GPT-2 model: the same pieces, in the same order and with the same names, as in build-nanogpt.

    token ids -> token embedding + position embedding -> n_layer x Block -> final LayerNorm -> lm_head -> logits
    Block = x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))          (pre-LayerNorm, as in GPT-2)

Parameter names equal Hugging Face's `GPT2LMHeadModel` (transformer.h.0.attn.c_attn.weight ...), so converting
weights (model/convert.py) is a transpose per matrix and nothing else. Training uses `forward(idx, targets)`;
generation (model/generate.py) passes a `KVCache` so that each new token costs one position, not the whole text.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# The config lives in its own module (both families read it); imported here too, where it always was.
from model.model_config import MAX_SIZES, NAMED_CONFIGS, GPTConfig, ModelConfigError  # noqa: F401


class KVCache:
    """Keys and values of every layer for the positions already processed.

    Attention of a new token needs the keys/values of all earlier tokens; they do not change once computed
    (causal attention), so generation keeps them here and feeds the model only the new token.
    """

    def __init__(self, n_layer: int, max_len: int):
        self.max_len = max_len
        self.length = 0  # positions stored so far = position of the next token
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) of the new positions; return the keys/values of all positions so far."""
        if self.keys[layer] is None:  # allocate once, in the dtype/device the model actually computes in
            B, H, _, D = k.shape
            self.keys[layer] = k.new_zeros(B, H, self.max_len, D)
            self.values[layer] = v.new_zeros(B, H, self.max_len, D)
        end = self.length + k.size(2)
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.n_embd, self.dropout, self.layer = config.n_head, config.n_embd, config.dropout, layer
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.IS_RESIDUAL_PROJECTION = True  # see GPT._init_weights
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): every head attends independently
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        dropout_p = self.dropout if self.training else 0.0
        past = 0
        if kv_cache is not None:
            past = kv_cache.length
            k, v = kv_cache.update(self.layer, k, v)
        if past == 0:
            # Training path. scaled_dot_product_attention picks the fastest kernel (FlashAttention on GPUs) and
            # never materialises the (T, T) attention matrix.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            # New tokens at positions past..past+T-1 see every cached position and the new ones up to themselves
            # (is_causal would align the triangle to the top-left, wrong when queries are fewer than keys).
            # A single new token, the usual generation step, sees everything: no mask needed.
            mask = None if T == 1 else torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 used the tanh approximation of GELU ("gelu_new" in Hugging Face); keep it to load its weights exactly.
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.IS_RESIDUAL_PROJECTION = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        # The residual stream x is only ever added to: gradients flow straight from the loss to every layer.
        x = x + self.attn(self.ln_1(x), kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    # Where the weights' names put the layers and the token embedding (model/checkpoint/weights.py reads these)
    LAYER_PREFIX = "transformer.h."
    TOKEN_EMBEDDING = "transformer.wte.weight"

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.padded_vocab_size, config.n_embd),  # token embedding
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, layer) for layer in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        # Weight tying (GPT-2, "Attention is all you need" 3.4): the input embedding and the output projection are
        # one matrix. Tokens with similar meaning should be near both as inputs and as predictions; it also saves
        # 38M parameters at the 124M size.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        with torch.no_grad():  # rows of the vocabulary padding are never used: start (and export) them as zeros
            self.lm_head.weight[config.vocab_size:].zero_()

    def _init_weights(self, module: nn.Module) -> None:
        # GPT-2 initialisation: N(0, 0.02) everywhere, zero biases. The projections that write into the residual
        # stream (attn.c_proj, mlp.c_proj) are scaled by 1/sqrt(2 * n_layer): each of the 2 * n_layer of them adds
        # to the stream, and without the scale the stream's variance would grow with depth.
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "IS_RESIDUAL_PROJECTION", False):
                std /= math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                kv_cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, padded_vocab_size) and, with targets (B, T), the mean cross-entropy.

        Targets equal to -1 are ignored. With a `kv_cache`, idx holds only the new tokens; they are placed after
        the cached positions and the cache grows by T. Logits of the vocabulary padding are -inf: they get
        probability 0, so the loss and any sampling only ever see the real tokens.
        """
        B, T = idx.size()
        past = kv_cache.length if kv_cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens is longer than block_size={self.config.block_size}")
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            if self.config.activation_checkpointing and self.training and kv_cache is None:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, kv_cache)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        if self.config.padded_vocab_size > self.config.vocab_size:
            # In place on a thin slice, outside autograd: recording it would make the backward pass clone the whole
            # (B, T, vocab) gradient. Not needed: a -inf logit has softmax 0, so its gradient is exactly 0 anyway,
            # and the matmul that produced `logits` does not keep its output for the backward pass.
            with torch.no_grad():
                logits[..., self.config.vocab_size:] = float("-inf")
        if kv_cache is not None:
            kv_cache.length += T
        loss = None
        if targets is not None:
            # in fp32 even when the model runs in bf16/fp16: a low-precision log-softmax over 50k classes loses
            # the loss's small differences (bf16 has 8 bits of mantissa)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_kv_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config.n_layer, max_len or self.config.block_size)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied embedding/head counted once). With non_embedding=True the position
        embedding is left out, as nanoGPT does: it is a lookup, no multiply-adds; the token embedding stays in
        because, tied, it is also the output layer's matrix multiply."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields the tied matrix once
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward), the estimate nanoGPT and llm.c use for MFU
        (PaLM paper, appendix B): 6*N + 12*L*H*Q*T.

        6*N: every parameter does one multiply-add (2 FLOPs) per token in the forward pass and two in the backward
        pass (gradients w.r.t. inputs and w.r.t. weights). 12*L*H*Q*T: the attention scores q.k and the weighted
        sum of v, which have no parameters: 2 matmuls x 2 FLOPs x 3 (fwd+bwd) per layer L, head H, head size Q,
        over T context positions. MFU = flops_per_token * tokens_per_second / peak FLOPs of the hardware.
        """
        cfg = self.config
        n = self.num_parameters(non_embedding=True)
        return 6 * n + 12 * cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * seq_len

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups: weight decay for matrices (>= 2-D: Linear weights, embeddings), none for biases and
        LayerNorm gains, which only shift or scale and whose decay toward 0 would just hurt."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]


def count_parameters(config: GPTConfig, non_embedding: bool = True) -> int:
    """GPT(config).num_parameters(non_embedding) without any weights: the model is built on the meta device,
    which allocates nothing, so sizing a 1.5B model (DeepSpeed's buckets, the checkpoint's bytes) is instant."""
    with torch.device("meta"):
        return GPT(config).num_parameters(non_embedding)
