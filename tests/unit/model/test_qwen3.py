"""The qwen3 family (model/qwen3.py, model/build.py): shapes, the KV cache with GQA and rotary offsets, FLOPs,
parameter counts, the config's one-line errors, weights on disk, and the family check of a resume."""
import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from model.build import build_model, count_parameters, describe_shape
from model.checkpoint.layout import CheckpointError
from model.checkpoint.manager import check_compatible
from model.checkpoint.weights import load_model, save_weights
from model.config import ConfigError, load_config
from model.gpt import GPT, GPTConfig, ModelConfigError
from model.qwen3 import Qwen3, apply_rotary, rotary_cos_sin

VOCAB = 1000  # not a multiple of 64: the padded rows and columns are exercised


def qwen3(**overrides) -> Qwen3:
    torch.manual_seed(0)
    values = dict(arch="qwen3", bias=False, block_size=48, vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2,
                  n_embd=64)
    model = build_model(GPTConfig(**{**values, **overrides}))
    with torch.no_grad():  # trained-like gains (they start at 1): a norm applied in the wrong place then shows
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    return model


def test_forward_shapes_loss_and_padded_vocabulary():
    model = qwen3()
    assert isinstance(model, Qwen3) and isinstance(build_model(GPTConfig(n_layer=1, n_embd=32, n_head=2)), GPT)
    idx = torch.randint(0, VOCAB, (3, 48))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 48, 1024)
    assert torch.isinf(logits[..., VOCAB:]).all() and torch.isfinite(logits[..., :VOCAB]).all()
    assert 6.0 < loss.item() < 8.5  # about ln(1000) = 6.9 at initialisation
    loss.backward()
    assert model.model.embed_tokens.weight.grad[VOCAB:].abs().max() == 0  # padding rows never learn
    with pytest.raises(ValueError, match="longer than block_size=48"):
        model(torch.zeros(1, 49, dtype=torch.long))


def test_parameter_names_are_qwen3_for_causal_lm_names_and_there_are_no_biases():
    names = set(qwen3(n_layer=1).state_dict())
    assert names == {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} | {
        f"model.layers.0.{name}.weight" for name in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
            "self_attn.k_norm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
            "post_attention_layernorm")}


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])  # full multi-head, groups of 2, one key/value head for all
def test_kv_cache_gives_the_full_forward_logits_for_every_new_token(n_kv_head):
    model = qwen3(n_kv_head=n_kv_head).eval()
    idx = torch.randint(0, VOCAB, (2, 40))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_kv_cache()
        # the prompt at once, then 3 tokens together (past > 0 and T > 1: the offset mask), then one at a time
        pieces = [model(idx[:, :20], kv_cache=cache)[0], model(idx[:, 20:23], kv_cache=cache)[0]]
        pieces += [model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(23, 40)]
    torch.testing.assert_close(torch.cat(pieces, dim=1)[..., :VOCAB], full[..., :VOCAB], atol=2e-5, rtol=1e-5)
    assert cache.length == 40
    assert cache.keys[0].shape == (2, n_kv_head, 48, 16)  # GQA's smaller cache: n_kv_head heads, not n_head


def test_rotary_scores_depend_on_the_distance_between_positions_only():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(query_position: int, key_position: int) -> float:
        cos, sin = rotary_cos_sin(torch.tensor([query_position, key_position]), 16, 1e4, torch.float32)
        return (apply_rotary(q, cos[:1], sin[:1]) * apply_rotary(k, cos[1:], sin[1:])).sum().item()

    assert score(5, 2) == pytest.approx(score(105, 102), abs=1e-4)  # shifted together: the same score
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)  # another distance: another score
    cos, sin = rotary_cos_sin(torch.arange(3), 16, 1e4, torch.float32)
    rotated = apply_rotary(q.expand(1, 1, 3, 16), cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 3))  # a rotation keeps lengths
    torch.testing.assert_close(rotated[..., 0, :], q[..., 0, :])  # position 0: no rotation


def test_a_cached_token_is_rotated_by_its_own_position():
    """The same token fed after 0 or after 5 cached tokens must be computed as at position 0 or 5."""
    model = qwen3().eval()
    idx = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        cache = model.new_kv_cache()
        model(idx[:, :5], kv_cache=cache)
        at_five = model(idx[:, 5:], kv_cache=cache)[0][0, -1]
        assert torch.allclose(at_five, model(idx)[0][0, -1], atol=2e-5)
        alone = model(idx[:, 5:])[0][0, -1]
    assert not torch.allclose(at_five, alone, atol=1e-3)


def test_flops_per_token_counts_gqa_and_swiglu_as_a_training_step_does():
    model = qwen3(n_layer=3, n_embd=128, n_head=4, n_kv_head=2, block_size=64, vocab_size=512)
    idx = torch.randint(0, 512, (2, 64))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    counted_per_token = counter.get_total_flops() / idx.numel()
    # The estimate also counts the RMSNorm gains as multiply-adds, which the counter does not see (under 1%).
    assert model.flops_per_token(64) == pytest.approx(counted_per_token, rel=0.01)
    # By hand: per layer q, o (C x C), k, v (C x C/2: GQA), gate, up, down (C x 3C); the untied head, no input embedding
    C, L, T = 128, 3, 64
    matrices = L * (2 * C * C + 2 * C * C // 2 + 3 * C * 3 * C) + 512 * C
    gains = L * (2 * C + 2 * 32) + C
    assert model.flops_per_token(T) == 6 * (matrices + gains) + 12 * L * 4 * 32 * T


def test_named_sizes_match_the_gpt2_sizes_in_non_embedding_parameters():
    for ours, theirs in [("qwen3-tiny", "tiny"), ("qwen3-mini", "mini"), ("qwen3-small", "small"),
                         ("qwen3-125m", "gpt2"), ("qwen3-350m", "gpt2-medium")]:
        config = GPTConfig.from_name(ours)
        assert config.arch == "qwen3" and not config.bias and not config.tied
        assert count_parameters(config) == pytest.approx(count_parameters(GPTConfig.from_name(theirs)), rel=1e-3)
    assert count_parameters(GPTConfig.from_name("qwen3-125m"), non_embedding=False) == 162_222_336
    assert count_parameters(GPTConfig.from_name("qwen3-1b")) == pytest.approx(1.11e9, rel=0.01)
    tied = GPTConfig.from_name("qwen3-tiny", tie_embeddings=True)
    assert count_parameters(tied) == count_parameters(tied, non_embedding=False) == 3_318_208
    assert "1 key-value heads" in describe_shape(GPTConfig.from_name("qwen3-tiny"))[0]


def test_tied_head_is_the_token_embedding():
    model = qwen3(tie_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.lm_head.weight is not qwen3().model.embed_tokens.weight


@pytest.mark.parametrize("values, message", [
    (dict(arch="llama"), "arch='llama' is not one of gpt2, qwen3"),
    (dict(arch="qwen3", bias=False, n_head=4, n_kv_head=3), "n_head=4 is not divisible by n_kv_head=3"),
    (dict(arch="qwen3", bias=False, rope_theta=0.0), "rope_theta=0.0 must be a number > 0"),
    (dict(arch="qwen3", bias=False, rope_theta=-1e4), "rope_theta=-10000.0 must be a number > 0"),
    (dict(arch="qwen3", bias=False, rope_theta=float("nan")), "rope_theta=nan"),
    (dict(arch="qwen3", bias=False, rope_theta=float("inf")), "rope_theta=inf"),
    (dict(arch="qwen3"), "bias=true, but qwen3 has no biases"),
    (dict(arch="qwen3", bias=False, n_embd=64, n_head=4, head_dim=15), "head_dim=15 is odd"),
    (dict(tie_embeddings=False), "tie_embeddings=False is not GPT-2's"),
    (dict(n_kv_head=4), "n_kv_head=4 is not GPT-2's"),
    (dict(intermediate_size=100), "intermediate_size=100 is not GPT-2's"),
    (dict(rope_theta=1e4), "rope_theta is a qwen3 setting"),
    (dict(n_kv_head=0), "n_kv_head=0 must be an integer"),
])
def test_config_errors_are_one_line(values, message):
    with pytest.raises(ModelConfigError, match=message) as error:
        GPTConfig(**{**dict(n_layer=1, n_head=12, n_embd=48), **values})
    assert "\n" not in str(error.value)


def test_config_file_chooses_the_family_and_a_gpt2_size_can_become_qwen3():
    config = load_config("tiny-cpu", ["model.arch=qwen3", "model.n_kv_head=1"]).gpt_config()
    assert (config.arch, config.bias, config.kv_heads, config.mlp_size) == ("qwen3", False, 1, 192)
    with pytest.raises(ConfigError, match="n_head=2 is not divisible by n_kv_head=3"):
        load_config("tiny-cpu", ["model.arch=qwen3", "model.n_kv_head=3"])
    with pytest.raises(ConfigError, match="arch='llama'"):
        load_config("tiny-cpu", ["model.arch=llama"])


@pytest.mark.parametrize("tied", [False, True])
def test_weights_round_trip_through_a_weights_folder(tmp_path, tied):
    model = qwen3(tie_embeddings=tied).eval()
    save_weights(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["arch"] == "qwen3"
    loaded = load_model(tmp_path)
    assert isinstance(loaded, Qwen3) and (loaded.lm_head.weight is loaded.model.embed_tokens.weight) == tied
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_an_older_gpt2_config_json_without_the_new_keys_loads(tmp_path):
    model = GPT(GPTConfig(block_size=16, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=32))
    save_weights(model, tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    old = {key: written[key] for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
                                         "vocab_multiple", "activation_checkpointing")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = load_model(tmp_path)
    assert isinstance(loaded, GPT) and loaded.config.arch == "gpt2"


def write_trainer_state(folder, model: dict):
    folder.mkdir(parents=True, exist_ok=True)
    state = {"step": 4, "world_size": 1, "zero_stage": 1, "precision": "fp32", "loader": {"samples_consumed": 8},
             "model": model}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    return folder


def test_a_checkpoint_resumes_only_in_its_own_family(tmp_path):
    gpt2 = GPTConfig(block_size=64, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=64)
    old = {key: getattr(gpt2, key) for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "bias",
                                               "vocab_multiple")}  # a checkpoint from before the arch key
    assert check_compatible(write_trainer_state(tmp_path / "old", old), gpt2, 64)["step"] == 4
    as_qwen3 = GPTConfig(**{**old, "bias": False}, arch="qwen3")
    with pytest.raises(CheckpointError, match="holds a gpt2 model but the config builds qwen3 .model.arch."):
        check_compatible(tmp_path / "old", as_qwen3, 64)
    saved = write_trainer_state(tmp_path / "qwen3", {**old, "bias": False, "arch": "qwen3"})
    with pytest.raises(CheckpointError, match="holds a qwen3 model but the config builds gpt2"):
        check_compatible(saved, gpt2, 64)
    # A qwen3 checkpoint resumes with the defaults spelt out, and with another context (no position embedding)
    assert check_compatible(saved, GPTConfig(**{**old, "bias": False, "block_size": 128}, arch="qwen3",
                                             n_kv_head=2, intermediate_size=192, tie_embeddings=False), 64)
    with pytest.raises(CheckpointError, match="another model size: n_kv_head=2 .config: 1."):
        check_compatible(saved, GPTConfig(**{**old, "bias": False}, arch="qwen3", n_kv_head=1), 64)


def test_activation_checkpointing_and_half_precision_forward():
    model = qwen3()
    idx = torch.randint(0, VOCAB, (2, 48))
    _, loss = model(idx, idx)
    checkpointed = qwen3(activation_checkpointing=True)
    _, loss_ckpt = checkpointed(idx, idx)
    loss.backward()
    loss_ckpt.backward()
    assert loss_ckpt.item() == pytest.approx(loss.item(), abs=1e-6)
    for (name, a), b in zip(model.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-5, msg=name)
    half = qwen3().to(torch.bfloat16)  # what DeepSpeed's bf16 engine computes with
    _, loss_bf16 = half(idx, idx)
    assert loss_bf16.dtype == torch.float32 and loss_bf16.item() == pytest.approx(loss.item(), abs=0.05)
    fp16 = qwen3().to(torch.float16)  # fp16 runs on GPUs only in DeepSpeed; the model itself computes in it
    _, loss_fp16 = fp16(idx, idx)
    assert loss_fp16.item() == pytest.approx(loss.item(), abs=0.05)
