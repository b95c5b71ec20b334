"""`gptstack eval --plot-run RUN --metric NAME`: one metric over a run's checkpoints, as a png (+ the points).

A metric the run logged (metrics.jsonl: val_loss, val_bpb, eval/hellaswag, ...) is read from there; a task name or
`<suite>_centered` is computed by evaluating every checkpoint that holds weights.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gptstack.errors import InputError
from gptstack.eval_data import SUITES, TASKS, resolve_tasks
from gptstack.files import atomic_write
from model.checkpoint.layout import checkpoints_dir, holds_weights, step_number
from model.eval.report import check_metric_name, logged_series, metric_baseline, plot_series


def _what_to_evaluate(metric: str) -> tuple[list[str], str | None]:
    """(tasks, task whose accuracy is the value; None = the centred mean of the tasks)."""
    name = metric.removeprefix("eval/")
    if name in TASKS:
        return [name], name
    if name.endswith("_centered") and name[: -len("_centered")] in SUITES:
        return resolve_tasks(name[: -len("_centered")]), None
    raise InputError(f"--metric {metric}: not in the run's metrics.jsonl, and not a task ({', '.join(TASKS)}) or "
                     f"<suite>_centered ({', '.join(s + '_centered' for s in SUITES)})")


def plot_run(args, run_suite) -> Path | None:
    run_dir = Path(args.plot_run)
    if not run_dir.is_dir():
        raise InputError(f"--plot-run {run_dir}: not a folder")
    check_metric_name(args.metric)
    points = logged_series(run_dir, args.metric)
    if not points:
        tasks, task = _what_to_evaluate(args.metric)
        steps = sorted((p for p in checkpoints_dir(run_dir).iterdir() if holds_weights(p)), key=step_number)
        if not steps:
            raise InputError(f"--plot-run {run_dir}: no checkpoints/step_*/model/ with weights to evaluate")
        tokens_at = {step: tokens for step, tokens, _ in logged_series(run_dir, "loss")}
        for folder in steps:
            results = run_suite(str(folder), tasks, args, show=False)
            value = results["tasks"][task]["accuracy"] if task else results["centered_mean"]
            step = step_number(folder)
            points.append((step, tokens_at.get(step), value))
            print(f"{folder.name}: {args.metric} = {value:.4f}", file=sys.stderr)
    from model.eval.scoring import rank_and_world
    if rank_and_world()[0] != 0:
        return None
    out = Path(args.output or run_dir)
    safe = args.metric.replace("/", "_")
    path = plot_series(points, args.metric, out / f"plot_{safe}.png", metric_baseline(args.metric))
    atomic_write(out / f"plot_{safe}.json", json.dumps(
        {"metric": args.metric, "points": [{"step": s, "tokens": t, "value": v} for s, t, v in points]},
        indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path
