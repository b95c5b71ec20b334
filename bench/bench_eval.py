"""Agreement and speed of `gptstack eval` against lm-evaluation-harness, on the same exported model and data.

The checkpoint is exported with `gptstack convert --to-hf`; the suite's tasks are written as lm-eval yamls
(`gptstack eval --write-lm-eval-tasks`, same Arrow files, same prompts); then, offline (HF_DATASETS_OFFLINE=1):
  lm-eval   lm_eval --model hf (the export, float32, CPU unless a GPU is there) --log_samples
  ours      python -m model.eval on our checkpoint, and once more on the HF export (loaded through transformers)
Per task: accuracies (lm-eval's `acc` for tasks scored without normalisation, `acc_bytes` for byte-normalised ones)
within one standard error, and the share of examples where both pick the same choice (target: >= 99%).
Each side runs `--repeats` times as a whole command (start-up included, what a user waits for); the best and
the spread are reported. Writes bench/results/eval_agreement.json and .md.

    python bench/bench_eval.py --checkpoint runs/quickstart --tasks core --limit 200 --repeats 3
    python bench/bench_eval.py --checkpoint RUN --tasks copa,winogrande --limit 20 --repeats 1 --out /tmp/x
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gptstack.eval_data import TASKS, resolve_tasks  # noqa: E402

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}


def _run(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, **OFFLINE,
                                                                                     **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def lm_eval_command(hf: Path, tasks_dir: Path, tasks: list[str], limit: int | None, shots: int, batch: int,
                    out: Path, device: str) -> list[str]:
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={hf},dtype=float32", "--include_path", str(tasks_dir),
               "--tasks", ",".join(f"gptstack_{t}" for t in tasks), "--num_fewshot", str(shots),
               "--batch_size", str(batch), "--device", device, "--log_samples", "--output_path", str(out)]
    return command + (["--limit", str(limit)] if limit else [])


def ours_command(checkpoint: str, tasks: list[str], limit: int | None, shots: int, batch: int, out: Path,
                 device: str) -> list[str]:
    command = [sys.executable, "-m", "model.eval", "--checkpoint", str(checkpoint), "--suite", ",".join(tasks),
               "--shots", str(shots), "--batch-size", str(batch), "--device", device, "--log-samples",
               "--output", str(out)]
    return command + (["--limit", str(limit)] if limit else [])


def read_lm_eval(out: Path, tasks: list[str]) -> tuple[dict, dict]:
    """({task: {metric: value}}, {task: {doc_id: (picks by normalisation, greedy)}}) from lm-eval's output."""
    results_file = sorted(out.rglob("results_*.json"))[-1]
    metrics = json.loads(results_file.read_text())["results"]
    picks: dict[str, dict] = {}
    for task in tasks:
        sample_file = sorted(out.rglob(f"samples_gptstack_{task}_*.jsonl"))[-1]
        picks[task] = {}
        for line in sample_file.read_text().splitlines():
            sample = json.loads(line)
            lls = [float(ll) for ll, _ in sample["filtered_resps"]]
            greedy = [str(g) == "True" for _, g in sample["filtered_resps"]]
            choices = sample["doc"]  # raw row: the choice strings come from our reader
            from gptstack.eval_data import read_row
            _, options, _, _ = read_row(task, choices)
            nbytes = [max(1, len(option.encode("utf-8"))) for option in options]
            by = {"none": lls, "byte": [ll / n for ll, n in zip(lls, nbytes)]}
            chosen = {name: max(range(len(v)), key=lambda i: (v[i], -i)) for name, v in by.items()}
            picks[task][int(sample["doc_id"])] = (chosen, greedy[0], lls)
        metrics[task] = {k.split(",")[0]: v for k, v in metrics[f"gptstack_{task}"].items() if "," in k}
    return metrics, picks


def read_ours(out: Path) -> tuple[dict, dict]:
    results = json.loads((out / "results.json").read_text())
    picks: dict[str, dict] = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        d = json.loads(line)
        picks.setdefault(d["task"], {})[d["index"]] = (d["picks"], d["correct"], d["loglikelihoods"])
    return results["tasks"], picks


def compare(tasks: list[str], lm_metrics: dict, lm_picks: dict, our_results: dict, our_picks: dict) -> dict:
    table = {}
    for task in tasks:
        spec = TASKS[task]
        metric = "acc_bytes" if spec.normalisation == "byte" else "acc"
        theirs, ours = lm_metrics[task][metric], our_results[task]["accuracy"]
        stderr = max(lm_metrics[task].get(f"{metric}_stderr") or 0.0, our_results[task]["stderr"])
        same, max_ll_diff = 0, 0.0
        for doc_id, (chosen, greedy, lls) in lm_picks[task].items():
            our_chosen, our_correct, our_lls = our_picks[task][doc_id]
            if spec.kind == "lm":
                same += greedy == our_correct
            else:
                same += chosen[spec.normalisation] == our_chosen[spec.normalisation]
            max_ll_diff = max(max_ll_diff, max(abs(a - b) for a, b in zip(lls, our_lls)))
        n = len(lm_picks[task])
        table[task] = {"lm_eval": theirs, "ours": ours, "metric": metric, "stderr": stderr, "n": n,
                       "within_stderr": abs(theirs - ours) <= stderr + 1e-12, "same_choice": same / n,
                       "max_loglikelihood_diff": max_ll_diff}
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a run / checkpoint folder of ours")
    parser.add_argument("--tasks", default="core")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    tasks = resolve_tasks(args.tasks)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as temp:
        temp = Path(temp)
        hf, tasks_dir = temp / "hf", temp / "tasks"
        _run([sys.executable, "-m", "model.convert", "--checkpoint", args.checkpoint, "--to-hf", str(hf)])
        _run([sys.executable, "-m", "model.eval", "--write-lm-eval-tasks", str(tasks_dir), "--suite",
              ",".join(tasks)])
        times = {"lm_eval": [], "ours": [], "ours_on_hf_export": []}
        for repeat in range(args.repeats):
            times["lm_eval"].append(_run(lm_eval_command(hf, tasks_dir, tasks, args.limit, args.shots,
                                                         args.batch_size, temp / f"lm{repeat}", args.device)))
            times["ours"].append(_run(ours_command(args.checkpoint, tasks, args.limit, args.shots,
                                                   args.batch_size, temp / f"ours{repeat}", args.device)))
        times["ours_on_hf_export"].append(_run(ours_command(str(hf), tasks, args.limit, args.shots,
                                                            args.batch_size, temp / "ours_hf", args.device)))
        lm_metrics, lm_picks = read_lm_eval(temp / "lm0", tasks)
        table = compare(tasks, lm_metrics, lm_picks, *read_ours(temp / "ours0"))
        table_hf = compare(tasks, lm_metrics, lm_picks, *read_ours(temp / "ours_hf"))
    report = {"checkpoint": args.checkpoint, "tasks": tasks, "limit": args.limit, "shots": args.shots,
              "batch_size": args.batch_size, "device": args.device, "seconds": times,
              "speedup_best": min(times["lm_eval"]) / min(times["ours"]),
              "agreement": table, "agreement_ours_on_hf_export": table_hf}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# gptstack eval vs lm-eval ({args.checkpoint}, limit {args.limit}, {args.shots}-shot, "
             f"batch {args.batch_size}, {args.device})", "",
             "| task | metric | lm-eval | ours | stderr | within | same choice | same (ours on HF export) |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for task, row in table.items():
        lines.append(f"| {task} | {row['metric']} | {row['lm_eval']:.4f} | {row['ours']:.4f} | "
                     f"{row['stderr']:.4f} | {'yes' if row['within_stderr'] else 'NO'} | "
                     f"{row['same_choice']:.1%} | {table_hf[task]['same_choice']:.1%} |")
    spread = {k: f"{min(v):.1f}-{max(v):.1f} s" for k, v in times.items() if v}
    lines += ["", f"wall time per whole command (best-worst of {args.repeats}): {spread}; "
                  f"lm-eval / ours (best) = {report['speedup_best']:.2f}x", ""]
    (out / "eval_agreement.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
