"""`model.convert --to-gguf` (model/gguf_export.py), read back with the gguf package's own GGUFReader: the
architecture, every tensor against our weights under llama.cpp's names (written out here, not taken from the
exporter), the vocabulary and merges of the tokenizer, the pre-tokenizer. That llama.cpp itself tokenizes and
continues the same: tests/integration/model/test_llama_cpp.py."""
import numpy as np
import pytest
import torch
from gguf import GGUFReader, TokenType

from model.build import build_model
from model.convert import main as convert_main
from model.gguf_export import GGUFExportError, pre_tokenizer, vocabulary, write_gguf
from model.model_config import GPTConfig
from pipeline.tokenizer import get_tokenizer
from pipeline.tokenizer.encodings import gpt2_bpe_files
from pipeline.tokenizer.folder import bytes_to_unicode
from tests.support.llama_cpp import bilingual_tokenizer, save_with_tokenizer

UNMAP = {char: byte for byte, char in bytes_to_unicode().items()}


def fields(path) -> tuple[dict, dict]:
    reader = GGUFReader(path)
    values = {name: field.contents() for name, field in reader.fields.items()}
    tensors = {t.name: np.asarray(t.data).reshape([int(n) for n in reversed(t.shape)]) for t in reader.tensors}
    return values, tensors


def as_bytes(token: str) -> bytes:
    return bytes(UNMAP[char] for char in token)


@pytest.fixture(scope="module")
def zh_tokenizer(tmp_path_factory):
    return bilingual_tokenizer(tmp_path_factory.mktemp("tok") / "zh-en", vocab_size=600)


@pytest.fixture(scope="module")
def gpt2_split_tokenizer(tmp_path_factory):
    return bilingual_tokenizer(tmp_path_factory.mktemp("tok") / "gpt2-split", vocab_size=300, pattern="gpt2")


def test_gpt2_tokenizer_becomes_openai_s_vocabulary_and_merges():
    # (checked on the lists the file gets: reading back 160,000 strings takes GGUFReader 12 s)
    tokenizer = get_tokenizer("gpt2")
    assert pre_tokenizer(tokenizer) == "gpt-2"
    tokens, types, merges = vocabulary(tokenizer)
    assert len(tokens) == 50257 and tokens[50256] == "<|endoftext|>" and types[50256] == TokenType.CONTROL
    assert set(types[:50256]) == {TokenType.NORMAL}
    assert [as_bytes(tokens[i]) for i in (0, 262, 50255)] == [tokenizer.encoding.decode_single_token_bytes(i)
                                                              for i in (0, 262, 50255)]
    assert merges[0] == "Ġ t"  # GPT-2's first merge; every one of OpenAI's merges is in the list
    files = gpt2_bpe_files()
    if files is not None:
        openai_merges = files[1].read_text(encoding="utf-8").splitlines()[1:]
        assert len(openai_merges) == 50000 and set(openai_merges) <= set(merges)


def test_gpt2_file_holds_our_weights_vocabulary_and_pre_tokenizer(tmp_path, gpt2_split_tokenizer):
    torch.manual_seed(0)
    model = build_model(GPTConfig(block_size=32, vocab_size=300, n_layer=2, n_head=2, n_embd=16)).eval()
    write_gguf(model, gpt2_split_tokenizer, tmp_path / "m.gguf")
    values, tensors = fields(tmp_path / "m.gguf")
    assert values["general.architecture"] == "gpt2"
    assert values["tokenizer.ggml.model"] == "gpt2" and values["tokenizer.ggml.pre"] == "gpt-2"
    assert (values["gpt2.context_length"], values["gpt2.embedding_length"], values["gpt2.block_count"],
            values["gpt2.attention.head_count"], values["gpt2.feed_forward_length"]) == (32, 16, 2, 2, 64)
    eot = gpt2_split_tokenizer.eot_token
    assert values["tokenizer.ggml.bos_token_id"] == values["tokenizer.ggml.eos_token_id"] == eot == 292
    assert values["tokenizer.ggml.add_bos_token"] is False
    tokens = values["tokenizer.ggml.tokens"]
    assert len(tokens) == 300 and tokens[eot] == "<|endoftext|>"
    assert [as_bytes(t) for t in tokens[:eot]] == sorted(gpt2_split_tokenizer.folder.ranks,
                                                         key=gpt2_split_tokenizer.folder.ranks.get)

    # our weights under llama.cpp's names: Linear weights as stored (out, in), no padding rows, no tied head copy
    ours = {name: t.numpy() for name, t in model.state_dict().items()}
    expected = {"token_embd.weight": ours["transformer.wte.weight"][:300],
                "position_embd.weight": ours["transformer.wpe.weight"],
                "output_norm.weight": ours["transformer.ln_f.weight"],
                "output_norm.bias": ours["transformer.ln_f.bias"]}
    parts = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
             "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
    for layer in range(2):
        for theirs, mine in parts.items():
            for kind in ("weight", "bias"):
                expected[f"blk.{layer}.{theirs}.{kind}"] = ours[f"transformer.h.{layer}.{mine}.{kind}"]
    assert sorted(tensors) == sorted(expected)
    for name, array in expected.items():
        assert np.array_equal(tensors[name], array), name


def test_gpt2_without_biases_gets_zero_biases(tmp_path, zh_tokenizer):
    model = build_model(GPTConfig(block_size=16, vocab_size=zh_tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=8,
                                  bias=False))
    write_gguf(model, zh_tokenizer, tmp_path / "m.gguf")
    _, tensors = fields(tmp_path / "m.gguf")
    assert not tensors["blk.0.attn_qkv.bias"].any() and tensors["blk.0.attn_qkv.bias"].shape == (24,)
    assert not tensors["output_norm.bias"].any()


@pytest.mark.parametrize("tied", [False, True])
def test_qwen3_file_with_a_trained_chinese_tokenizer(tmp_path, zh_tokenizer, tied):
    torch.manual_seed(1)
    config = GPTConfig(arch="qwen3", block_size=32, vocab_size=zh_tokenizer.vocab_size, n_layer=2, n_head=4,
                       n_kv_head=2, head_dim=8, n_embd=16, bias=False, rope_theta=5e5, tie_embeddings=tied)
    model = build_model(config).eval()
    write_gguf(model, zh_tokenizer, tmp_path / "m.gguf")
    values, tensors = fields(tmp_path / "m.gguf")
    assert values["general.architecture"] == "qwen3" and values["tokenizer.ggml.pre"] == "llama-bpe"
    assert (values["qwen3.attention.head_count"], values["qwen3.attention.head_count_kv"],
            values["qwen3.attention.key_length"], values["qwen3.rope.dimension_count"],
            values["qwen3.feed_forward_length"]) == (4, 2, 8, 8, config.mlp_size)
    assert values["qwen3.rope.freq_base"] == 5e5
    assert values["qwen3.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)

    # the vocabulary: every rank's bytes at its id, then the special tokens as control tokens
    folder = zh_tokenizer.folder
    tokens, types = values["tokenizer.ggml.tokens"], values["tokenizer.ggml.token_type"]
    assert len(tokens) == zh_tokenizer.vocab_size == 600
    assert {token: rank for rank, token in enumerate(map(as_bytes, tokens[:len(folder.ranks)]))} == folder.ranks
    for text, token_id in folder.meta["special_tokens"].items():
        assert tokens[token_id] == text and types[token_id] == TokenType.CONTROL
    chinese = [t for t in tokens if "\u4e00" <= as_bytes(t).decode("utf-8", "replace")[:1] <= "\u9fff"]
    assert len(chinese) > 50  # the tokenizer holds Chinese words
    left, right = values["tokenizer.ggml.merges"][0].split(" ")
    assert as_bytes(left) + as_bytes(right) == next(t for t, r in sorted(folder.ranks.items(), key=lambda x: x[1])
                                                    if len(t) > 1)  # the first merge makes the first 2-byte token

    ours = {name: t.numpy() for name, t in model.state_dict().items()}
    assert np.array_equal(tensors["token_embd.weight"], ours["model.embed_tokens.weight"][:600])
    if tied:
        assert "output.weight" not in tensors  # llama.cpp reuses the token embedding
    else:
        assert np.array_equal(tensors["output.weight"], ours["lm_head.weight"][:600])
    for mine, theirs in (("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                         ("self_attn.o_proj", "attn_output"), ("self_attn.q_norm", "attn_q_norm"),
                         ("self_attn.k_norm", "attn_k_norm"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
                         ("mlp.down_proj", "ffn_down"), ("input_layernorm", "attn_norm"),
                         ("post_attention_layernorm", "ffn_norm")):
        assert np.array_equal(tensors[f"blk.1.{theirs}.weight"], ours[f"model.layers.1.{mine}.weight"]), mine
    assert tensors["blk.0.attn_k.weight"].shape == (2 * 8, 16)  # grouped-query: 2 key/value heads of 8
    assert len(tensors) == 1 + (not tied) + 1 + 2 * 11


def test_a_pattern_llama_cpp_lacks_or_another_vocabulary_is_refused(tmp_path, gpt2_split_tokenizer):
    model = lambda v: build_model(GPTConfig(block_size=8, vocab_size=v, n_layer=1, n_head=1, n_embd=8))  # noqa: E731
    nanochat = bilingual_tokenizer(tmp_path / "nanochat", vocab_size=300, pattern="nanochat")
    with pytest.raises(GGUFExportError, match="'nanochat' pattern, which no llama.cpp pre-tokenizer implements"):
        write_gguf(model(300), nanochat, tmp_path / "b.gguf")
    with pytest.raises(GGUFExportError, match="has 300 ids but the model 301"):
        write_gguf(model(301), gpt2_split_tokenizer, tmp_path / "c.gguf")
    assert not (tmp_path / "b.gguf").exists() and not (tmp_path / "c.gguf").exists()


def test_command_writes_replaces_its_own_file_and_refuses_others(tmp_path, zh_tokenizer, capsys):
    model = build_model(GPTConfig(arch="qwen3", block_size=16, vocab_size=600, n_layer=1, n_head=2, n_embd=16,
                                  bias=False))
    weights = save_with_tokenizer(model, zh_tokenizer, tmp_path / "weights")
    out = tmp_path / "out" / "m.gguf"
    for _ in range(2):  # a rerun replaces the file it wrote
        convert_main(["--checkpoint", str(weights), "--to-gguf", str(out)])
        assert "exported" in capsys.readouterr().out
        assert fields(out)[0]["general.architecture"] == "qwen3"

    mine = tmp_path / "notes.gguf"
    mine.write_text("my notes")
    with pytest.raises(SystemExit) as stop:
        convert_main(["--checkpoint", str(weights), "--to-gguf", str(mine)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: --to-gguf {mine}: exists and is not a GGUF file model.convert --to-gguf wrote")
    assert mine.read_text() == "my notes"
    convert_main(["--checkpoint", str(weights), "--to-gguf", str(mine), "--force"])
    assert f"--force: model.convert --to-gguf replaces {mine}" in capsys.readouterr().err
    assert fields(mine)[0]["tokenizer.ggml.pre"] == "llama-bpe"

    for argv, message in ((["--to-gguf", str(tmp_path)], "is a folder"),
                          (["--to-gguf", str(tmp_path / "x.gguf"), "--to-hf", str(tmp_path / "hf")],
                           "one export at a time")):
        with pytest.raises(SystemExit) as stop:
            convert_main(["--checkpoint", str(weights), *argv])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "hf").exists()
