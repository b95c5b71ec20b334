"""One place that turns a model config into a model: `build_model(config)` gives the family's class (`model.arch`).

    gpt2  -> model.gpt.GPT      (GPT-2: learned positions, LayerNorm, GELU, tied embeddings)
    qwen3 -> model.qwen3.Qwen3  (rotary positions, RMSNorm, SwiGLU, GQA, QK-norm, untied head by default)

Both have the same interface: forward(idx, targets=None, kv_cache=None) -> (logits, loss), new_kv_cache(),
num_parameters(non_embedding), flops_per_token(seq_len), param_groups(weight_decay), an `lm_head` Linear and an
nn.Embedding for the tokens (named by the class's TOKEN_EMBEDDING), the layers under its LAYER_PREFIX.
"""
import torch
import torch.nn as nn

from model.gpt import GPT
from model.model_config import GPTConfig
from model.qwen3 import Qwen3

FAMILIES: dict[str, type[nn.Module]] = {"gpt2": GPT, "qwen3": Qwen3}


def model_class(config: GPTConfig) -> type[nn.Module]:
    return FAMILIES[config.arch]  # GPTConfig refused any other arch when it was built


def build_model(config: GPTConfig) -> nn.Module:
    """A freshly initialised model of `config`'s family (built on the current default device)."""
    return model_class(config)(config)


def count_parameters(config: GPTConfig, non_embedding: bool = True) -> int:
    """build_model(config).num_parameters(non_embedding) without any weights: the model is built on the meta device,
    which allocates nothing, so sizing a 1.5B model (DeepSpeed's buckets, the checkpoint's bytes) is instant."""
    with torch.device("meta"):
        return build_model(config).num_parameters(non_embedding)


def token_embedding(model: nn.Module) -> nn.Embedding:
    """The model's token embedding module, whichever the family."""
    return model.get_submodule(model.TOKEN_EMBEDDING.removesuffix(".weight"))


def describe_shape(config: GPTConfig) -> list[str]:
    """The model's shape and parameter count in words (`model.train --print-config`)."""
    total, non_embedding = count_parameters(config, non_embedding=False), count_parameters(config)
    vocabulary = (f"vocabulary: {config.vocab_size:,} tokens, padded to {config.padded_vocab_size:,} (a multiple of "
                  f"{config.vocab_multiple})")
    if config.arch == "gpt2":
        return [f"{config.n_layer} layers, {config.n_head} heads of {config.head_size} (width {config.n_embd}), "
                f"context {config.block_size} tokens", vocabulary,
                f"parameters: {non_embedding:,} (+ {total - non_embedding:,} in the position embedding = {total:,})"]
    head = "tied to the token embedding" if config.tied else "untied"
    count = (f"{total:,} (the tied embedding counted once; no position embedding: rotary)" if config.tied else
             f"{non_embedding:,} (+ {total - non_embedding:,} in the token embedding = {total:,})")
    return [f"arch qwen3, {config.n_layer} layers, {config.n_head} query / {config.kv_heads} key-value heads of "
            f"{config.head_size} (width {config.n_embd}), SwiGLU {config.mlp_size}, rotary theta "
            f"{config.rope_theta:g}, context {config.block_size} tokens, output head {head}", vocabulary,
            f"parameters: {count}"]
