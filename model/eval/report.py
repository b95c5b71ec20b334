"""What `gptstack eval` writes: results.json, results.md, and a plot of one metric over a run's checkpoints."""
from __future__ import annotations

import json
import math
from pathlib import Path

from gptstack.errors import InputError
from gptstack.files import atomic_write, bounded_lines
from gptstack.eval_data import TASKS


def results_markdown(results: dict, title: str) -> str:
    lines = [f"# {title}", "", "| task | accuracy | ± stderr | n | normalisation | random | centred |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for task, r in results["tasks"].items():
        lines.append(f"| {task} | {r['accuracy']:.4f} | {r['stderr']:.4f} | {r['n']} | {r['normalisation']} | "
                     f"{r['baseline']:.3f} | {r['centered']:+.4f} |")
    lines += ["", f"**{results['suite']} centred mean: {results['centered_mean']:+.4f}** "
                  f"(mean over tasks of (accuracy - random) / (1 - random); 0 = chance, 1 = perfect)", ""]
    return "\n".join(lines)


def write_results(folder: Path, results: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write(folder / "results.md", results_markdown(results, f"Evaluation of {results['checkpoint']}"))


def logged_series(run_dir: Path, metric: str) -> list[tuple[int, int | None, float]]:
    """(step, tokens seen, value) of `metric` in RUN_DIR/metrics.jsonl (empty when the run never logged it)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    tokens_at: dict[int, int] = {}
    points = []
    with open(path, "rb") as lines:
        for line in bounded_lines(lines):
            try:
                record = json.loads(line or b"")
            except ValueError:
                continue  # a torn last line of a killed run
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                continue
            if isinstance(record.get("tokens"), int):
                tokens_at[record["step"]] = record["tokens"]
            value = record.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                points.append((record["step"], value))
    return [(step, tokens_at.get(step), value) for step, value in points]


def plot_series(points: list[tuple[int, int | None, float]], metric: str, path: Path,
                baseline: float | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_tokens = all(tokens is not None for _, tokens, _ in points)
    xs = [tokens if by_tokens else step for step, tokens, _ in points]
    figure, axes = plt.subplots(figsize=(6, 3.6))
    axes.plot(xs, [value for *_, value in points], marker="o")
    if baseline is not None:
        axes.axhline(baseline, color="grey", linestyle="--", label="random")
        axes.legend()
    axes.set_xlabel("training tokens" if by_tokens else "step")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temp: figure.savefig(temp, format="png", dpi=110))
    plt.close(figure)
    return path


def metric_baseline(metric: str) -> float | None:
    """The random level of an `eval/<task>` (or `<task>`) accuracy; 0 for a centred number."""
    name = metric.removeprefix("eval/")
    if name in TASKS:
        return TASKS[name].baseline
    return 0.0 if name.endswith("centered") else None


def check_metric_name(metric: str) -> None:
    if not metric or any(c in metric for c in "\n\r"):
        raise InputError(f"--metric {metric!r}: give a metrics.jsonl key (val_loss, eval/hellaswag, ...) or a task")
