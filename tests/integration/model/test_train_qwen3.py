"""The qwen3 family through the real trainer: 2 ranks, ZeRO-3, bf16 (the hardest of the layouts: parameters
sharded, a second dtype), killed with SIGKILL after its step-2 checkpoint and resumed bit-identically, val_loss and
val_bpb included; its checkpoint refused by a GPT-2 config in one line; and the trained model exported with
`model.convert --to-hf`, where transformers' greedy generate continues a prompt exactly as ours does.
(tests/integration/model/test_train_resume.py does the same for GPT-2 and other rank counts.)"""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.support.train import REPO_ROOT, TINY, descendants, read_metrics, run_train, step_losses, train_command, \
    train_env

STEPS, HALF = 4, 2
QWEN3 = [*TINY, "--set", "model.name=qwen3-tiny", "--set", "train.zero_stage=3", "--set", "train.precision=bf16",
         "--set", "checkpoint.every=2", "--set", "eval.every=2"]


def qwen3_args(data: Path, run_dir: Path) -> list[str]:
    return [*QWEN3, "--data", str(data), "--run-dir", str(run_dir), "--max-steps", str(STEPS)]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def reference(tiny_shards, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("qwen3") / "reference"
    result = run_train(2, qwen3_args(tiny_shards, run_dir))
    assert_ok(result)
    assert "model qwen3-tiny" in result.stdout and "2 rank(s)" in result.stdout and "ZeRO-3 bf16" in result.stdout
    return run_dir


def test_sigkill_then_resume_gives_bit_identical_losses(tiny_shards, reference, tmp_path):
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(train_command(2, qwen3_args(tiny_shards, run_dir)), cwd=REPO_ROOT, env=train_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    committed = run_dir / "checkpoints" / f"step_{HALF:06d}"
    deadline = time.time() + 240
    while not committed.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in [process.pid] + descendants(process.pid):  # torchrun's workers sit in sessions of their own
        os.kill(pid, signal.SIGKILL)
    process.wait()
    assert committed.is_dir(), "the run never committed its step-2 checkpoint"
    assert not (run_dir / "checkpoints" / f"step_{STEPS:06d}").exists(), "killed too late: the run had finished"

    result = run_train(2, qwen3_args(tiny_shards, run_dir))
    assert_ok(result)
    assert f"resumed from {committed}" in result.stdout
    assert step_losses(run_dir) == step_losses(reference)  # bit-identical floats, each step once
    assert sorted(step_losses(run_dir)) == list(range(1, STEPS + 1))
    evaluations = [[(r["val_loss"], r["val_bpb"]) for r in read_metrics(run) if "val_loss" in r]
                   for run in (reference, run_dir)]
    assert evaluations[0] == evaluations[1] and len(evaluations[0]) == 2


def test_a_gpt2_config_refuses_the_qwen3_checkpoint_in_one_line(tiny_shards, reference):
    result = run_train(1, [*TINY, "--data", str(tiny_shards), "--run-dir", str(reference), "--max-steps", "6"])
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "holds a qwen3 model but the config builds gpt2 (model.arch)" in lines[0]
    assert not (reference / "checkpoints" / "step_000006").exists()


def test_exported_run_continues_greedily_in_transformers_as_in_ours(reference, tmp_path):
    from transformers import AutoModelForCausalLM, Qwen3ForCausalLM

    from model.checkpoint.weights import load_model
    from model.convert import main as convert
    from model.generate import generate

    convert(["--checkpoint", str(reference), "--to-hf", str(tmp_path / "hf")])
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf) is Qwen3ForCausalLM
    ours = load_model(reference)
    prompt = torch.tensor([[464, 3290, 286, 262, 1578]])  # "The history of the United"
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=20, min_new_tokens=20)
    assert generate(ours, prompt, 20, temperature=0).tolist() == expected.tolist()
