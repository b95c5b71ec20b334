"""`gptstack sft` end to end, in one lean 2-rank run from the shared tiny pretraining run (tiny_run, GPT-2 BPE):
killed with SIGKILL once its step-2 checkpoint is committed and step 3 is logged, resumed, its step-3 loss
bit-identical to the killed life's; the held-out loss logged; the export read by transformers, whose
apply_chat_template gives our ids and whose logits are ours."""
import json
import os
import signal
import subprocess
import sys

import torch

from model.chat import ChatFormat
from model.checkpoint.weights import load_model
from pipeline.tokenizer import get_tokenizer
from tests.support.loopback_netns import shared_netns
from tests.support.train import REPO_ROOT, descendants, free_port, read_metrics, train_env
from tests.support.faults import wait_for

STEPS = 4
ARGS = ["--config", "sft-tiny-cpu", "--max-steps", str(STEPS), "--set", "data.seq_len=64",
        "--set", "train.tokens_per_step=256", "--set", "train.micro_batch_size=2", "--set", "train.zero_stage=1",
        "--set", "checkpoint.every=2", "--set", "eval.every=2", "--set", "eval.val_batches=2",
        "--set", "optim.warmup_steps=1", "--set", "sft.val_fraction=0.2"]


def conversations(path):
    """Questions the base never saw, English and Chinese, with and without a system prompt."""
    lines = []
    for i in range(40):
        a, b = 3 + i, 7 * i % 23
        turns = [{"role": "user", "content": f"What is {a} plus {b}?" if i % 2 else f"{a} 加 {b} 等于几？"},
                 {"role": "assistant", "content": f"{a + b}."}]
        if i % 3 == 0:
            turns = [{"role": "system", "content": "Answer with the number."}] + turns
        lines.append(json.dumps({"messages": turns}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n")
    return path


def sft_command(base, data, run_dir):
    return shared_netns().wrap([
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "model.sft",
        "--base", str(base), "--data", str(data), "--run-dir", str(run_dir), *ARGS])


def logged(run_dir, step):
    path = run_dir / "metrics.jsonl"
    return path.is_file() and any(json.loads(line).get("step") == step and "loss" in json.loads(line)
                                  for line in path.read_text().splitlines() if line.strip())


def test_sft_killed_resumes_bit_identically_and_exports_for_transformers(tiny_run, tmp_path):
    data, run_dir = conversations(tmp_path / "chats.jsonl"), tmp_path / "sft"
    process = subprocess.Popen(sft_command(tiny_run, data, run_dir), cwd=REPO_ROOT, env=train_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: logged(run_dir, 3), 240, "step 3's loss", process)
    finally:
        for pid in [process.pid] + descendants(process.pid):  # kill -9, torchrun and both ranks
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # already gone
                pass
        process.wait()
    assert (run_dir / "checkpoints" / "step_000002").is_dir() and not (run_dir / "checkpoints" / "step_000004").exists()
    before = {r["step"]: r for r in read_metrics(run_dir)}

    result = subprocess.run(sft_command(tiny_run, data, run_dir), cwd=REPO_ROOT, env=train_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "resumed from" in result.stdout and "step_000002" in result.stdout
    assert "32 conversations in" in result.stdout and "8 held out" in result.stdout
    after = read_metrics(run_dir)
    losses = {r["step"]: r["loss"] for r in after if "loss" in r}
    assert sorted(losses) == [1, 2, 3, 4] and losses[3] == before[3]["loss"]  # bit-identical after kill -9
    val = [r["val_loss"] for r in after if "val_loss" in r]
    assert len(val) == 2 and val[1] < val[0]  # the held-out conversations' loss falls as it learns them
    state = json.loads((run_dir / "checkpoints" / "step_000004" / "trainer_state.json").read_text())
    assert state["sft"]["chat_format"] == "chatml" and state["model"]["vocab_size"] == 50259

    export = tmp_path / "hf"
    converted = subprocess.run([sys.executable, "-m", "model.convert", "--checkpoint", str(run_dir),
                                "--to-hf", str(export)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert converted.returncode == 0, converted.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer
    hf_tokenizer, hf_model = AutoTokenizer.from_pretrained(export), AutoModelForCausalLM.from_pretrained(export)
    chat = ChatFormat.for_tokenizer(get_tokenizer("gpt2"))
    messages = [{"role": "system", "content": "Answer with the number."}, {"role": "user", "content": "9 加 4 等于几？"}]
    ids = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids == chat.encode_prompt(messages)
    ours = load_model(run_dir)
    with torch.no_grad():
        theirs = hf_model(torch.tensor([ids])).logits[0, -1]
        mine = ours(torch.tensor([ids]))[0][0, -1, :50259]
    assert torch.allclose(theirs, mine, atol=1e-4)
    assert json.loads((export / "generation_config.json").read_text())["eos_token_id"] == [50258, 50256]
