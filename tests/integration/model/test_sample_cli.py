"""`python -m model.sample` as a user runs it: the greedy continuation streamed for each sample, and a bad checkpoint
or a shape mismatch as one error line."""
import json
import subprocess
import sys

import torch

from model.checkpoint.weights import save_weights
from model.generate import generate
from model.gpt import GPT, GPTConfig
from pipeline.tokenizer import get_tokenizer

VOCAB = 1000


def run_sample(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.sample", *args], capture_output=True, text=True, timeout=120)


def test_sample_cli_streams_the_greedy_continuation(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50257, n_layer=2, n_head=2, n_embd=32)).eval()
    save_weights(model, tmp_path / "run" / "checkpoints" / "step_000001" / "model")
    enc = get_tokenizer("gpt2").encoding
    prompt = "Once upon a time 很久以前"
    result = run_sample("--checkpoint", str(tmp_path / "run"), "--prompt", prompt, "--max-new-tokens", "20",
                        "--temperature", "0", "--device", "cpu", "--num-samples", "2", "--top-k", "40",
                        "--top-p", "0.9", "--seed", "3")
    assert result.returncode == 0, result.stderr
    expected = generate(model, torch.tensor([enc.encode(prompt)]), 20, temperature=0)[0, -20:].tolist()
    text = prompt + enc.decode(expected) + "\n"
    assert result.stdout == f"--- sample 1/2 ---\n{text}--- sample 2/2 ---\n{text}"
    assert result.stderr.count("20 tokens in") == 2


def test_sample_cli_bad_checkpoint_and_shape_mismatch_are_one_line_errors(tmp_path):
    missing = run_sample("--checkpoint", str(tmp_path / "nothing"), "--prompt", "hi")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"error: checkpoint {tmp_path / 'nothing'} does not exist\n"

    save_weights(GPT(GPTConfig(block_size=16, vocab_size=50257, n_layer=1, n_head=2, n_embd=16)), tmp_path / "w")
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    (tmp_path / "w" / "config.json").write_text(json.dumps({**config, "block_size": 32}))
    mismatch = run_sample("--checkpoint", str(tmp_path / "w"))
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert mismatch.stderr.startswith("error: checkpoint ") and mismatch.stderr.count("\n") == 1
    assert "transformer.wpe.weight has shape (16, 16)" in mismatch.stderr

    save_weights(GPT(GPTConfig(block_size=16, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=16)), tmp_path / "v")
    wrong_vocab = run_sample("--checkpoint", str(tmp_path / "v"))
    assert wrong_vocab.returncode == 2
    assert "vocab_size=1000 but its tokenizer gpt2 has 50257 tokens" in wrong_vocab.stderr
