"""The qwen3 family against the real transformers Qwen3ForCausalLM (random weights, no download, no remote code):
logits and greedy generation equal in both directions, and the Qwen3 variants we do not compute refused."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

from model.build import build_model
from model.checkpoint.layout import CheckpointError
from model.convert import export_to_hf, gpt_from_hf
from model.generate import generate
from model.gpt import GPTConfig
from model.qwen3 import Qwen3

VOCAB = 1000  # not a multiple of 64: the padding is dropped on export and added on import


def trained_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights of trained magnitudes (norm gains away from 1): a difference in any computation then shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(1 + 0.3 * torch.randn_like(p) if p.dim() == 1 else 0.1 * torch.randn_like(p))
    return model.eval()


def hf_qwen3(tied: bool, dtype=torch.float32, **overrides) -> Qwen3ForCausalLM:
    """A Qwen3ForCausalLM built by transformers itself, at a tiny size: 8 query / 4 key-value heads as MiniMind-3."""
    config = Qwen3Config(**{**dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=4, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=tied,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), **overrides})
    return trained_like(Qwen3ForCausalLM(config), seed=1).to(dtype)


def assert_same_greedy_continuation(hf, ours, prompt: torch.Tensor, new_tokens: int = 24) -> None:
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    assert generate(ours, prompt, new_tokens, temperature=0).tolist() == expected.tolist()


@pytest.mark.parametrize("tied", [False, True])
def test_a_transformers_qwen3_folder_imports_with_the_same_logits_and_greedy_text(tmp_path, tied):
    hf = hf_qwen3(tied)
    hf.save_pretrained(tmp_path)
    ours = gpt_from_hf(tmp_path)
    assert isinstance(ours, Qwen3) and ours.config.tied == tied and ours.config.kv_heads == 4
    assert (ours.config.head_size, ours.config.mlp_size, ours.config.rope_theta) == (16, 160, 1e6)
    idx = torch.randint(0, VOCAB, (3, 40))
    with torch.no_grad():
        expected = hf(idx, labels=idx)
        logits, loss = ours(idx[:, :-1], idx[:, 1:])
        torch.testing.assert_close(ours(idx)[0][..., :VOCAB], expected.logits, atol=1e-5, rtol=0)
    assert loss.item() == pytest.approx(expected.loss.item(), abs=1e-5)
    assert_same_greedy_continuation(hf, ours, idx[:1, :6])


def test_a_bf16_hub_style_folder_with_top_level_rope_theta_imports(tmp_path):
    """Qwen3 folders on the Hub are bf16 and written by transformers 4 (rope_theta at the top level)."""
    hf = hf_qwen3(tied=True, dtype=torch.bfloat16)
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("rope_parameters")
    (tmp_path / "config.json").write_text(json.dumps({**config, "rope_theta": 5e5, "rope_scaling": None}))
    ours = gpt_from_hf(tmp_path)
    assert ours.config.rope_theta == 5e5 and ours.model.embed_tokens.weight.dtype == torch.float32
    reloaded = Qwen3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()  # transformers' reading of it
    idx = torch.randint(0, VOCAB, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0][..., :VOCAB], reloaded(idx).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tied", [False, True])
def test_our_model_exports_as_a_standard_qwen3_for_causal_lm(tmp_path, tied):
    ours = trained_like(build_model(GPTConfig.from_name("qwen3-tiny", vocab_size=VOCAB, block_size=64, n_head=4,
                                                        n_kv_head=2, tie_embeddings=tied)), seed=2)
    export_to_hf(ours, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and "auto_map" not in config  # no remote code
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf) is Qwen3ForCausalLM and hf.config.num_key_value_heads == 2
    assert (hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()) == tied
    idx = torch.randint(0, VOCAB, (3, 64))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0][..., :VOCAB], atol=1e-5, rtol=0)
    assert_same_greedy_continuation(hf, ours, idx[:2, :5])
    again = gpt_from_hf(tmp_path)  # and back: the same tensors (the padding rows are zeros on both sides)
    for (name, a), b in zip(again.state_dict().items(), ours.state_dict().values()):
        rows = VOCAB if name in ("model.embed_tokens.weight", "lm_head.weight") else None
        assert torch.equal(a[:rows], b[:rows]), name


@pytest.mark.parametrize("overrides, message", [
    (dict(use_sliding_window=True, sliding_window=16), "use_sliding_window=True is not supported"),
    (dict(attention_bias=True), "attention_bias=True is not supported"),
    (dict(hidden_act="gelu"), "hidden_act='gelu' is not supported"),
    (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}), "rope scaling"),
    (dict(num_key_value_heads=3), "n_head=8 is not divisible by n_kv_head=3"),
])
def test_qwen3_variants_we_do_not_compute_are_refused_in_one_line(tmp_path, overrides, message):
    config = hf_qwen3(tied=False).config.to_dict()
    config.update(overrides)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as error:
        gpt_from_hf(tmp_path)  # refused from config.json alone: no weights file is needed to say so
    assert "\n" not in str(error.value)


def test_model_card_names_the_qwen3_architecture_and_counts_as_transformers_does():
    from model.model_card import model_card

    ours = build_model(GPTConfig.from_name("qwen3-tiny", vocab_size=VOCAB, block_size=64))
    card = model_card(ours, "gpt2", 999, {}, "demo")
    assert "tags: [qwen3, gptstack]" in card and "Qwen3 (`Qwen3ForCausalLM`): 2 layers, 2 query / 1 key-value" in card
    with torch.device("meta"):
        hf = Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=192,
                                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                          head_dim=32, tie_word_embeddings=False))
    assert f"| parameters | {hf.num_parameters():,} (embedding and head included) |" in card
