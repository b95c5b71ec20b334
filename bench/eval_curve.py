"""When does each task leave chance? Every checkpoint of a run scored on a suite, drawn per task against tokens.

    python bench/eval_curve.py --run runs/quickstart --suite quick --limit 200
writes bench/results/eval_curve.json and docs/figures/eval_quick_curve.png (accuracy per task with its random level
dashed, and the centred mean). Each point carries its standard error: at a few hundred examples a task is at chance
until its accuracy is more than about two standard errors above the dashed line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gptstack.eval_data import TASKS, resolve_tasks  # noqa: E402
from model.checkpoint.layout import checkpoints_dir, holds_weights, step_number  # noqa: E402
from model.eval import centered_mean, evaluate, load_eval_model  # noqa: E402
from model.eval.report import logged_series  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--figure", default=str(REPO / "docs" / "figures" / "eval_quick_curve.png"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "eval_curve.json"))
    args = parser.parse_args(argv)
    run = Path(args.run)
    tasks = resolve_tasks(args.suite)
    tokens_at = {step: tokens for step, tokens, _ in logged_series(run, "loss")}
    points = []
    for folder in sorted((p for p in checkpoints_dir(run).iterdir() if holds_weights(p)), key=step_number):
        start = time.perf_counter()
        results, _ = evaluate(load_eval_model(folder, "cpu"), tasks, args.limit, batch_size=32, shots=0)
        step = step_number(folder)
        points.append({"step": step, "tokens": tokens_at.get(step), "seconds": time.perf_counter() - start,
                       "centered_mean": centered_mean(results),
                       "tasks": {t: {"accuracy": r["accuracy"], "stderr": r["stderr"]} for t, r in results.items()}})
        print(f"step {step}: " + " ".join(f"{t} {r['accuracy']:.3f}" for t, r in results.items())
              + f" centred {points[-1]['centered_mean']:+.3f}", flush=True)
    Path(args.out).write_text(json.dumps({"run": str(run), "suite": args.suite, "limit": args.limit,
                                          "points": points}, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    xs = [p["tokens"] or p["step"] for p in points]
    for i, task in enumerate(tasks):
        color = f"C{i}"
        axes[0].errorbar(xs, [p["tasks"][task]["accuracy"] for p in points],
                         yerr=[p["tasks"][task]["stderr"] for p in points], color=color, marker="o", capsize=2,
                         label=task)
        axes[0].axhline(TASKS[task].baseline, color=color, linestyle="--", linewidth=0.8)
    axes[0].set_title(f"accuracy ({args.limit} examples each; dashed = random)")
    axes[1].plot(xs, [p["centered_mean"] for p in points], marker="o", color="black")
    axes[1].axhline(0, color="grey", linestyle="--")
    axes[1].set_title(f"{args.suite} centred mean (0 = chance)")
    for ax in axes:
        ax.set_xlabel("training tokens")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.figure, dpi=90)
    print(f"wrote {args.figure} and {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
