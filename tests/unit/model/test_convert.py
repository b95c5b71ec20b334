"""Hugging Face GPT-2 interop against the real transformers GPT2LMHeadModel (random weights, no download); the
`python -m model.convert` command itself: tests/integration/model/test_convert_cli.py."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, GPT2LMHeadModel

from model.checkpoint.layout import CheckpointError
from model.convert import export_to_hf, gpt_from_hf
from model.gpt import GPT, GPTConfig
from pipeline.tokenizer import get_tokenizer
from tests.support.hf import VOCAB, random_hf_model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    random_hf_model().save_pretrained(folder)
    return folder


def test_imported_weights_give_hugging_face_logits_and_loss(hf_dir):
    hf = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    ours = gpt_from_hf(hf_dir)
    assert ours.config.padded_vocab_size == 1024
    for batch, length in [(1, 1), (3, 17), (2, 48)]:
        idx = torch.randint(0, VOCAB, (batch, length))
        with torch.no_grad():
            expected = hf(idx, labels=idx)
            logits, loss = ours(idx[:, :-1], idx[:, 1:]) if length > 1 else (ours(idx)[0], None)
            if length > 1:
                logits = torch.cat([logits, ours(idx)[0][:, -1:]], dim=1)
        torch.testing.assert_close(logits[..., :VOCAB], expected.logits, atol=1e-5, rtol=0)
        if loss is not None:  # HF shifts the labels itself; the padded columns must not change our loss
            assert loss.item() == pytest.approx(expected.loss.item(), abs=1e-5)


def test_exported_checkpoint_loads_in_hugging_face_with_the_same_logits(tmp_path):
    torch.manual_seed(1)
    ours = GPT(GPTConfig(block_size=48, vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=64)).eval()
    export_to_hf(ours, tmp_path / "hf")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied again by HF
    # llama.cpp's convert_hf_to_gguf.py reads the context length as n_ctx (OpenAI's name), not n_positions
    saved = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert saved["n_ctx"] == saved["n_positions"] == hf.config.n_positions == 48
    idx = torch.randint(0, VOCAB, (3, 48))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0][..., :VOCAB], atol=1e-5, rtol=0)


def test_model_without_biases_exports_as_zero_biases(tmp_path):
    torch.manual_seed(2)
    ours = GPT(GPTConfig(block_size=16, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=32, bias=False)).eval()
    export_to_hf(ours, tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0][..., :VOCAB], atol=1e-5, rtol=0)


def test_export_writes_gpt2_tokenizer_that_autotokenizer_loads_offline(tmp_path):
    torch.manual_seed(3)
    ours = GPT(GPTConfig(block_size=32, vocab_size=50257, n_layer=1, n_head=2, n_embd=16))
    export_to_hf(ours, tmp_path)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "config.json", "model.safetensors"):
        assert (tmp_path / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    encoding = get_tokenizer("gpt2").encoding
    text = "Hello world!  Pretraining 大语言模型 costs 1,000 GPU-hours.\n\n<|endoftext|>Next document 🙂"
    assert tokenizer(text)["input_ids"] == encoding.encode(text, allowed_special="all")
    assert tokenizer.eos_token_id == 50256 and tokenizer.model_max_length == 32
    assert json.loads((tmp_path / "config.json").read_text())["eos_token_id"] == 50256


def test_old_gpt2_file_layout_with_mask_buffers_and_stored_head_imports(hf_dir, tmp_path):
    """The hub's original gpt2 weights lack the 'transformer.' prefix and carry attn.bias mask buffers."""
    tensors = load_file(hf_dir / "model.safetensors")
    old = {name.removeprefix("transformer."): t for name, t in tensors.items()}
    for layer in range(2):
        old[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(1, 1, 48, 48))
        old[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    save_file(old, tmp_path / "model.safetensors", metadata={"format": "pt"})
    a, b = gpt_from_hf(hf_dir), gpt_from_hf(tmp_path)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_sharded_hugging_face_save_imports(hf_dir, tmp_path):
    GPT2LMHeadModel.from_pretrained(hf_dir).save_pretrained(tmp_path, max_shard_size="200KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()  # really sharded
    a, b = gpt_from_hf(hf_dir), gpt_from_hf(tmp_path)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_half_precision_hugging_face_files_import_as_float32(tmp_path):
    hf = random_hf_model().to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    ours = gpt_from_hf(tmp_path)
    assert all(p.dtype == torch.float32 for p in ours.parameters())
    assert torch.equal(ours.transformer.h[1].mlp.c_fc.weight, hf.transformer.h[1].mlp.c_fc.weight.float().t())


def test_unsupported_or_broken_hugging_face_folders_are_refused(hf_dir, tmp_path):
    config = json.loads((hf_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    (tmp_path / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="activation_function='relu' is not supported"):
        gpt_from_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_embd": 32}))
    with pytest.raises(CheckpointError, match=r"has shape \(\d+, 64\), config.json implies"):
        gpt_from_hf(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        gpt_from_hf(tmp_path)
