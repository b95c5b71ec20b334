"""A small Hugging Face GPT-2 with trained-like random weights, for the import/export tests (no download)."""
import torch
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB = 1000  # not a multiple of 64: the padded columns are exercised


def random_hf_model(vocab_size: int = VOCAB, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=48, vocab_size=vocab_size,
                        bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # trained-like magnitudes (HF's init is tiny; biases/LayerNorms constant): every
        for name, p in model.named_parameters():  # difference in the computation (e.g. exact GELU) then shows
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.normal_(0.0, 0.1)
    return model
