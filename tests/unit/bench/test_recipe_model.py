"""bench/recipe_model.py: the ablation's in-between models are honest interpolations. MixedGPT with every switch off
computes model.gpt.GPT's logits and with every switch on model.qwen3.Qwen3's, from the same weights; build() hands
out the real classes at the ends; every variant keeps GPT-2's non-embedding parameter count."""
import dataclasses

import pytest
import torch

from bench.recipe_model import Features, MixedGPT, build
from model.gpt import GPT
from model.model_config import GPTConfig
from model.qwen3 import Qwen3

BASE = GPTConfig(block_size=32, vocab_size=100, n_layer=2, n_head=4, n_embd=48)
ALL = Features(rope=True, rmsnorm=True, swiglu=True, qk_norm=True, gqa=True, untied=True)


def gpt_weights_as_mixed(gpt: GPT) -> dict:
    """GPT's state dict under MixedGPT's names (its fused c_attn split into q, k, v)."""
    state = {"model.embed_tokens.weight": gpt.transformer.wte.weight, "model.embed_positions.weight":
             gpt.transformer.wpe.weight, "lm_head.weight": gpt.lm_head.weight}
    for kind in ("weight", "bias"):
        state[f"model.norm.{kind}"] = getattr(gpt.transformer.ln_f, kind)
        for i, block in enumerate(gpt.transformer.h):
            prefix = f"model.layers.{i}."
            q, k, v = getattr(block.attn.c_attn, kind).chunk(3, dim=0)
            state.update({prefix + f"self_attn.q_proj.{kind}": q, prefix + f"self_attn.k_proj.{kind}": k,
                          prefix + f"self_attn.v_proj.{kind}": v,
                          prefix + f"self_attn.o_proj.{kind}": getattr(block.attn.c_proj, kind),
                          prefix + f"input_layernorm.{kind}": getattr(block.ln_1, kind),
                          prefix + f"post_attention_layernorm.{kind}": getattr(block.ln_2, kind),
                          prefix + f"mlp.up_proj.{kind}": getattr(block.mlp.c_fc, kind),
                          prefix + f"mlp.down_proj.{kind}": getattr(block.mlp.c_proj, kind)})
    return state


def test_all_switches_off_is_gpt2():
    torch.manual_seed(0)
    gpt = build(BASE, Features())
    assert type(gpt) is GPT
    mixed = MixedGPT(BASE, Features())
    mixed.load_state_dict(gpt_weights_as_mixed(gpt), strict=True)
    idx = torch.randint(0, 100, (2, 32))
    assert torch.allclose(mixed(idx)[0], gpt(idx)[0], atol=1e-5)
    assert mixed.num_parameters() == gpt.num_parameters() and mixed.flops_per_token(32) == gpt.flops_per_token(32)


def test_all_switches_on_is_qwen3():
    torch.manual_seed(0)
    qwen = build(BASE, ALL)
    assert type(qwen) is Qwen3 and qwen.config.kv_heads == 2 and not qwen.config.tied
    mixed = MixedGPT(BASE, ALL)
    mixed.load_state_dict(qwen.state_dict(), strict=True)  # the same names and shapes
    idx = torch.randint(0, 100, (2, 32))
    assert torch.allclose(mixed(idx)[0], qwen(idx)[0], atol=1e-5)
    assert mixed.num_parameters() == qwen.num_parameters() and mixed.flops_per_token(32) == qwen.flops_per_token(32)


@pytest.mark.parametrize("change", [f.name for f in dataclasses.fields(Features)])
def test_each_change_keeps_the_layer_parameters(change):
    gpt = build(BASE, Features())
    alone = build(BASE, Features(**{change: True}))
    assert type(alone) is MixedGPT
    per_layer = 12 * BASE.n_embd ** 2
    # biases and norm gains aside (a few hundred here), the same weights per layer: the rows compare like for like
    assert abs(alone.num_parameters() - gpt.num_parameters()) < 0.02 * BASE.n_layer * per_layer
    assert len(set(Features(**{change: True}).names())) == 1
    x = torch.randint(0, 100, (1, 32))
    _, loss = alone(x, x)
    loss.backward()  # trains: every parameter gets a gradient
    assert all(p.grad is not None for p in alone.parameters())
