"""The GPT model itself: sizes, initialisation, padded vocabulary, loss, KV cache, activation checkpointing, FLOPs."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

from model.gpt import GPT, NAMED_CONFIGS, GPTConfig, ModelConfigError, count_parameters


def small_model(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**dict(block_size=32, vocab_size=1000, n_layer=3, n_head=2, n_embd=32), **overrides}))


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_named_gpt2_sizes_have_the_parameters_of_hugging_face_gpt2(name):
    config = GPTConfig.from_name(name)
    with torch.device("meta"):  # shapes only, no memory
        ours = GPT(config)
        hf = GPT2LMHeadModel(GPT2Config(n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                                        n_positions=config.block_size, vocab_size=config.vocab_size))
    padding = (config.padded_vocab_size - config.vocab_size) * config.n_embd
    assert ours.num_parameters(non_embedding=False) - padding == hf.num_parameters()
    assert ours.num_parameters() == ours.num_parameters(non_embedding=False) - config.block_size * config.n_embd


@pytest.mark.parametrize("bias", [True, False])
def test_count_parameters_from_a_config_equals_the_built_model(bias):
    config = GPTConfig(block_size=32, vocab_size=1000, n_layer=3, n_head=2, n_embd=32, bias=bias)
    model = GPT(config)
    for non_embedding in (True, False):
        assert count_parameters(config, non_embedding) == model.num_parameters(non_embedding)
    # 124,475,904: GPT-2 small with the vocabulary padded to 50,304 and the position embedding
    assert count_parameters(GPTConfig.from_name("gpt2"), non_embedding=False) == 124_475_904


def test_named_cpu_sizes_build_and_unknown_names_are_refused():
    for name in NAMED_CONFIGS:
        config = GPTConfig.from_name(name)
        assert config.padded_vocab_size % 64 == 0 and config.padded_vocab_size >= config.vocab_size
    assert GPTConfig.from_name("tiny", block_size=64).block_size == 64
    with pytest.raises(ModelConfigError, match="unknown model name 'gpt5'"):
        GPTConfig.from_name("gpt5")
    with pytest.raises(ModelConfigError, match="not divisible"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ModelConfigError, match="unknown field"):
        GPTConfig.from_dict({"n_layers": 2})


def test_gpt2_initialisation_scales_residual_projections_and_ties_embedding():
    model = small_model(n_layer=4, n_embd=128, n_head=4)
    assert model.lm_head.weight is model.transformer.wte.weight
    block = model.transformer.h[0]
    residual_std = 0.02 / math.sqrt(2 * 4)
    assert block.attn.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.1)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.1)
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(block.attn.c_attn.bias == 0) and torch.all(block.ln_1.weight == 1)
    assert torch.all(model.lm_head.weight[1000:] == 0)  # padding rows


def test_padded_vocabulary_gets_no_probability_and_no_gradient():
    model = small_model()
    assert model.config.padded_vocab_size == 1024
    idx = torch.randint(0, 1000, (2, 16))
    targets = torch.randint(0, 1000, (2, 16))
    targets[0, :3] = -1  # ignored positions
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 1024)
    assert torch.all(logits[..., 1000:] == float("-inf"))
    real = logits[..., :1000]
    expected = F.cross_entropy(real.reshape(-1, 1000), targets.reshape(-1), ignore_index=-1)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    loss.backward()
    assert torch.all(model.lm_head.weight.grad[1000:] == 0)
    assert model.lm_head.weight.grad[:1000].abs().sum() > 0


def test_kv_cache_gives_the_logits_of_the_full_forward_pass():
    model = small_model().eval()
    idx = torch.randint(0, 1000, (2, 32))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_kv_cache()
        pieces = [model(idx[:, a:b], kv_cache=cache)[0] for a, b in [(0, 10), (10, 11), (11, 20), (20, 21), (21, 32)]]
    assert cache.length == 32
    torch.testing.assert_close(torch.cat(pieces, dim=1)[..., :1000], full[..., :1000], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(idx[:, :1], kv_cache=cache)


def test_activation_checkpointing_changes_memory_not_results():
    plain = small_model(dropout=0.1)
    checkpointed = small_model(dropout=0.1, activation_checkpointing=True)
    idx, targets = torch.randint(0, 1000, (2, 32)), torch.randint(0, 1000, (2, 32))
    torch.manual_seed(1)
    _, loss_plain = plain(idx, targets)
    loss_plain.backward()
    torch.manual_seed(1)  # same dropout masks: recomputation must replay them exactly
    _, loss_ckpt = checkpointed(idx, targets)
    loss_ckpt.backward()
    assert loss_ckpt.item() == pytest.approx(loss_plain.item(), abs=1e-6)
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_flops_per_token_matches_counted_matmul_flops_of_a_training_step():
    model = small_model(n_layer=4, n_embd=128, n_head=4, block_size=64, vocab_size=512)
    idx = torch.randint(0, 512, (2, 64))
    # The math kernel computes attention as plain matmuls that the counter sees (it skips fused CPU kernels).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    counted_per_token = counter.get_total_flops() / idx.numel()
    # The estimate also counts biases and LayerNorm gains as multiply-adds, which the counter does not see.
    assert model.flops_per_token(64) == pytest.approx(counted_per_token, rel=0.02)


def test_param_groups_decay_matrices_only_and_cover_every_parameter_once():
    model = small_model()
    decay, no_decay = model.param_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    grouped = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(grouped) == len(set(grouped)) == len(list(model.parameters()))
    optimizer = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)  # torch accepts them as they are
    assert len(optimizer.param_groups) == 2
