"""A Hugging Face export is complete: generation_config.json (end-of-text as eos, the context length as the
maximum length) that real transformers' generate() obeys, a README.md model card filled from the run's own files,
files with normal permissions; and `model.sample` stops at end-of-text by default, as generate() does."""
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from model.config import load_config, save_config
from model.gpt import GPT, GPTConfig
from model.checkpoint.weights import save_weights
from tests.support.train import make_shards

EOT = 50256


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as the trainer leaves it (weights, trainer_state.json, config.yaml, metrics.jsonl, and the
    shard folder it trained on), holding a model whose every prediction is end-of-text: its final LayerNorm
    outputs one constant vector, and end-of-text's (tied) embedding row points along it."""
    root = tmp_path_factory.mktemp("export")
    data = make_shards(root / "shards", train_shards=1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50257, n_layer=3, n_head=2, n_embd=32)).eval()
    with torch.no_grad():
        direction = torch.randn(32)
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(direction)
        model.transformer.wte.weight[EOT] = 10 * direction
    run = root / "run"
    step = run / "checkpoints" / "step_000010"
    save_weights(model, step / "model")
    (step / "trainer_state.json").write_text(json.dumps({"step": 10, "tokens_per_step": 512, "world_size": 1}))
    save_config(load_config("tiny-cpu", [f"data.dir={data}", f"run_dir={run}", "model.block_size=64",
                                         "model.n_layer=3", "model.n_embd=32", "data.seq_len=64"]), run)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 10, "loss": 5.0}, {"step": 10, "val_loss": 4.5, "val_bpb": 1.23, "hellaswag_acc_token_norm": 0.3},
        {"step": 12, "val_loss": 4.0}]) + "\n")  # step 12: logged after this checkpoint, not its numbers
    return run


def test_export_has_generation_config_model_card_and_normal_permissions(run_dir, tmp_path):
    hf = tmp_path / "hf"
    result = subprocess.run([sys.executable, "-m", "model.convert", "--checkpoint", str(run_dir), "--to-hf", str(hf)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    generation = GenerationConfig.from_pretrained(hf)
    assert (generation.eos_token_id, generation.bos_token_id, generation.max_length) == (EOT, EOT, 64)
    model = AutoModelForCausalLM.from_pretrained(hf).eval()
    prompt = torch.tensor([[464, 3290, 286]])  # "The history of"
    output = model.generate(prompt, do_sample=False)  # everything from generation_config.json
    assert output[0].tolist() == [464, 3290, 286, EOT]  # stopped at end-of-text, as model.sample does

    card = (hf / "README.md").read_text()
    manifest = json.loads((run_dir.parent / "shards" / "manifest.json").read_text())
    for expected in ["3 layers, 2 heads, width 32", f"{model.num_parameters():,}", "context length | 64 tokens",
                     "5,120 tokens (10 steps)", str(run_dir.parent / "shards"),
                     f"{manifest['totals']['train_tokens']:,} training tokens", "| 4.5000 |", "| 1.2300 |",
                     "| 0.3000 |", "`gpt2`", "AutoModelForCausalLM.from_pretrained", "# license:"]:
        assert expected in card, expected
    assert "4.0000" not in card

    mode = 0o666 & ~_umask()
    for path in hf.iterdir():
        assert path.stat().st_mode & 0o777 == mode, path.name


def test_sample_stops_at_end_of_text_unless_told_to_go_through(run_dir):
    def sample(*extra):
        return subprocess.run([sys.executable, "-m", "model.sample", "--checkpoint", str(run_dir), "--prompt",
                               "The history of", "--temperature", "0", "--max-new-tokens", "3", *extra],
                              capture_output=True, text=True, timeout=120)

    stopped = sample()
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "The history of\n" and "stopped at end-of-text" in stopped.stderr
    through = sample("--through-eot")
    assert through.returncode == 0, through.stderr
    assert through.stdout == "The history of" + "<|endoftext|>" * 3 + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
