"""LoRA: the base frozen, adapters on attention + MLP only, training starts at the base, and the merged weights
(what every LoRA checkpoint's model/ holds) compute what the adapted model computes, for both families."""
import pytest
import torch

from model.build import build_model
from model.chat.lora import add_lora, adapter_state, merged_state
from model.gpt import GPTConfig


@pytest.mark.parametrize("name", ["tiny", "qwen3-tiny"])
def test_merged_weights_compute_the_adapted_model(name):
    torch.manual_seed(0)
    config = GPTConfig.from_name(name, block_size=16, vocab_size=256)
    model = build_model(config).eval()
    ids = torch.randint(0, 256, (2, 16))
    ids[:, 3] = 254  # a marker in the input: its embedding's delta counts
    before = model(ids)[0]
    chosen = add_lora(model, 4, 8.0, ["attention", "mlp"], rows=[254, 255])  # as the chat markers' ids
    assert torch.equal(model(ids)[0], before)  # B = 0: the adapted model starts as the base
    assert all(".attn." in n or ".self_attn." in n or ".mlp." in n for n in chosen) and len(chosen) == (
        4 if name == "tiny" else 7) * config.n_layer
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # everything else frozen; the markers' rows of the embedding (and of an untied head) get a trainable delta
    assert trainable and all(n.endswith((".lora_A", ".lora_B", ".row_delta")) for n in trainable)
    assert sum(n.endswith(".row_delta") for n in trainable) == (1 if config.tied else 2)
    assert model.param_groups(0.1) and all(g["params"] for g in model.param_groups(0.1))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith((".lora_B", ".row_delta")):
                p.normal_(std=0.02)  # as after some training
    adapted = model(ids)[0]
    assert not torch.allclose(adapted, before)
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    plain = build_model(config).eval()
    plain.load_state_dict(merged_state(state), strict=False)
    assert torch.allclose(plain(ids)[0], adapted, atol=1e-5)
    adapters = adapter_state(model)
    assert sum(t.numel() for t in adapters.values()) < 0.2 * sum(p.numel() for p in plain.parameters())
