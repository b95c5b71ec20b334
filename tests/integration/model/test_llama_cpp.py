"""llama.cpp itself on our exports: its tokenizer gives our ids for Chinese and English text, and its greedy
continuation is ours, for both families with a trained Chinese+English tokenizer (`model.convert --to-gguf`), and
for GPT-2 with OpenAI's tokenizer also by the Hugging Face route (`--to-hf`, then llama.cpp's convert_hf_to_gguf.py).

The tools come from scripts/build_llama_cpp.sh (about 40 minutes on 2 busy cores, so never built by the suite);
without them the tests are skipped, saying so. The file's content is checked without llama.cpp in
tests/unit/model/test_gguf_export.py.
"""
import subprocess
import sys

import pytest
import torch

from model.build import build_model
from model.convert import main as convert_main
from model.model_config import GPTConfig
from pipeline.tokenizer import get_tokenizer
from tests.support.llama_cpp import (CHINESE, ENGLISH, MIXED, bilingual_tokenizer, gpt2_vocabulary_model,
                                     llama_cpp_bin, llama_cpp_converter, llama_greedy, llama_tokenize, memorised_text,
                                     our_greedy, save_with_tokenizer, train_tiny)

BIN = llama_cpp_bin()
pytestmark = pytest.mark.skipif(BIN is None, reason="llama.cpp is not built: run scripts/build_llama_cpp.sh, or set "
                                "LLAMA_CPP_BIN to the folder holding llama-tokenize and llama-simple")
NEW_TOKENS = 24
FAMILIES = {"gpt2": {}, "qwen3": {"bias": False, "n_kv_head": 2}}


def prompts() -> list[str]:
    """Beginnings of memorised paragraphs (the model recites them: long, varied continuations) and of new text."""
    texts = memorised_text()
    return [texts[0][:30], texts[5][:8], texts[9][:12], CHINESE[:6], "The history of"]


def continuation_bytes(tokenizer, ids: list[int]) -> bytes:
    return b"".join(tokenizer.encoding.decode_single_token_bytes(i) for i in ids)


def convert(*args: str) -> None:
    """`python -m model.convert ARGS`, in this process (an interpreter start less each time; the command's own
    process is tests/integration/model/test_convert_cli.py's)."""
    assert convert_main(list(args)) is None


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bilingual_tokenizer(tmp_path_factory.mktemp("tokenizer") / "zh-en", vocab_size=2048)


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tokenizer, tmp_path_factory):
    """A tiny model of the family that has learned memorised_text, and the GGUF file `--to-gguf` made of it."""
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    model = build_model(GPTConfig(arch=request.param, block_size=64, vocab_size=tokenizer.vocab_size, n_layer=2,
                                  n_head=4, n_embd=64, **FAMILIES[request.param]))
    weights = save_with_tokenizer(train_tiny(model, tokenizer), tokenizer, folder / "weights")
    convert("--checkpoint", str(weights), "--to-gguf", str(folder / "model.gguf"))
    return model, folder / "model.gguf"


def test_llama_cpp_tokenizes_chinese_and_english_to_our_ids(exported, tokenizer):
    _, gguf_file = exported
    for text in (CHINESE, ENGLISH, MIXED, *memorised_text()[3:6]):
        assert llama_tokenize(BIN, gguf_file, text) == tokenizer.encode(text), text[:40]


def test_llama_cpp_continues_greedily_as_we_do(exported, tokenizer):
    model, gguf_file = exported
    recited = 0
    for prompt in prompts():
        ours = our_greedy(model, tokenizer, prompt, NEW_TOKENS)
        theirs, decoded = llama_greedy(BIN, gguf_file, prompt, NEW_TOKENS)
        assert (theirs, decoded) == (continuation_bytes(tokenizer, ours), len(ours)), prompt
        recited += len(set(ours)) > 5  # not one token repeated: the comparison means something
    assert recited >= 3


@pytest.mark.skipif(llama_cpp_converter() is None, reason="llama.cpp's convert_hf_to_gguf.py is not unpacked: run "
                                                          "scripts/build_llama_cpp.sh")
def test_gpt2_hugging_face_export_converts_with_llama_cpp_s_own_converter(tmp_path):
    # OpenAI's tokenizer, which the converter recognises (a trained one it refuses: the reason for --to-gguf)
    tokenizer = get_tokenizer("gpt2")
    torch.manual_seed(0)
    model = gpt2_vocabulary_model(GPTConfig(block_size=64, n_layer=2, n_head=4, n_embd=64))
    weights = save_with_tokenizer(model, tokenizer, tmp_path / "weights")
    convert("--checkpoint", str(weights), "--to-hf", str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, str(llama_cpp_converter()), str(tmp_path / "hf"), "--outfile",
                             str(tmp_path / "hf.gguf"), "--outtype", "f32"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    convert("--checkpoint", str(weights), "--to-gguf", str(tmp_path / "ours.gguf"))
    for gguf_file in (tmp_path / "hf.gguf", tmp_path / "ours.gguf"):
        assert llama_tokenize(BIN, gguf_file, ENGLISH + MIXED) == tokenizer.encode(ENGLISH + MIXED)
        for prompt in prompts()[:2]:
            ours = our_greedy(model, tokenizer, prompt, NEW_TOKENS)
            assert llama_greedy(BIN, gguf_file, prompt, NEW_TOKENS) == (continuation_bytes(tokenizer, ours),
                                                                         len(ours)), (gguf_file.name, prompt)
