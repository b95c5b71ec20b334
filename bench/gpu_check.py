"""The GPU check (bench/gpu_check.sh runs this): speed and memory of model.train's step on one GPU, one table.

For GPT-2 124M and the qwen3 family at the same non-embedding size (qwen3-125m), both with configs/gpt2-124m.yaml's
training settings, each measured through the real trainer (model.train's Trainer: DeepSpeed engine, loader,
optimizer, loss all-reduce):

    base       bf16, ZeRO-1, AdamW, no torch.compile      (the configs' own setting)
    compile    the same with train.compile=true
    ZeRO-0     the same without ZeRO
    Muon       ZeRO-0 with optim.name=muon                 (against the ZeRO-0 row: Muon needs whole matrices)

Each row: median step time over the timed steps (after warm-up steps, which include compilation), tokens/s, MFU
(model.metrics.mfu: the trainer's own FLOPs per token over the GPU's bf16 peak) and the peak GPU memory allocated by
torch during the row's steps. Rows run one after another in one process, on random token ids (the speed of a step
does not depend on what the tokens say). A time budget (--budget-s) skips the rows that would not fit, and says so.

    bash bench/gpu_check.sh                        # one H100: under 8 minutes, writes bench/results/gpu_check.md
    python bench/gpu_check.py --cpu-smoke --out /tmp/t.md   # the same logic at a toy size on the CPU (tests)

Without a CUDA GPU it stops at once with one `error:` line (exit 2), unless --cpu-smoke is given; --cpu-smoke
measures nothing worth reading, it checks that every row runs and the table is written.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")

from gptstack.errors import GPTStackError, exit_with_error  # noqa: E402

# (label, config file, --set overrides) of the two models: one config, so that only the model differs between them.
# The CPU smoke test uses toy sizes of the same two families.
MODELS = [("GPT-2 124M", "configs/gpt2-124m.yaml", ["model.name=gpt2"]),
          ("qwen3 125M", "configs/gpt2-124m.yaml", ["model.name=qwen3-125m"])]
SMOKE_MODELS = [("GPT-2 tiny", "configs/tiny-cpu.yaml", ["model.name=tiny"]),
                ("qwen3 tiny", "configs/tiny-cpu.yaml", ["model.name=qwen3-tiny"])]
# (row, overrides on top of the base setting). The base is each config's bf16 ZeRO-1 AdamW without compile.
ROWS = [("base", []), ("compile", ["train.compile=true"]), ("ZeRO-0", ["train.zero_stage=0"]),
        ("Muon", ["optim.name=muon", "train.zero_stage=0"])]  # Muon is ZeRO-0 only: against the ZeRO-0 row


class NoGPU(GPTStackError):
    """The check needs a CUDA GPU and none is visible."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="toy models on the CPU in fp32, no compile: checks the logic and the table, not the GPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 20; 3 with --cpu-smoke)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first, compilation included (default 5; 1 with --cpu-smoke)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="sequences per step (default 16 x 1024 tokens; 2 x 64 with --cpu-smoke)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="seconds after which the remaining rows are skipped (gpu_check.sh's hard limit is 480)")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file for the table (default bench/results/gpu_check.md; with --cpu-smoke "
                             "nothing is written unless --out is given)")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    args.steps = args.steps or (3 if smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 5)
    args.micro_batch = args.micro_batch or (2 if smoke else 16)
    args.seq_len = 64 if smoke else 1024
    if args.out is None and not smoke:
        args.out = REPO / "bench" / "results" / "gpu_check.md"
    for name in ("steps", "micro_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def row_config(config_file: str, model_overrides: list[str], row_overrides: list[str], args, data: Path,
               run_dir: Path):
    from model.config import load_config
    tokens = args.micro_batch * args.seq_len
    common = [f"data.seq_len={args.seq_len}", f"train.micro_batch_size={args.micro_batch}",
              f"train.tokens_per_step={tokens}", "train.max_steps=1000000", "optim.warmup_steps=10",
              "eval.every=0", "eval.hellaswag=null", "log.tensorboard=false", "data.verify_checksums=false",
              f"run_dir={run_dir}", f"data.dir={data}"]
    precision = ["train.precision=fp32" if args.cpu_smoke else "train.precision=bf16", "train.zero_stage=1"]
    return load_config(REPO / config_file, model_overrides + common + precision + row_overrides)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(config, env, args) -> dict:
    """One row: a fresh Trainer, warm-up steps, then the timed steps; the engine is freed afterwards."""
    from model.metrics import accelerator_name, mfu
    from model.train import Trainer

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(config, env, "none")
    try:
        trainer.setup()
        for _ in range(args.warmup):
            trainer.train_step()
        synchronize()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            result = trainer.train_step()  # .item() of the loss inside: the step has finished on the device
            synchronize()
            times.append(time.perf_counter() - start)
        step = statistics.median(times)
        tokens_per_s = config.train.tokens_per_step / step
        utilisation = mfu(trainer.flops_per_token, tokens_per_s, 1, accelerator_name())
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        return {"step_ms": 1000 * step, "tokens_per_s": tokens_per_s, "mfu": utilisation, "peak_gib": peak,
                "params": trainer.num_parameters, "loss": result["loss"]}
    finally:
        engine = getattr(trainer, "engine", None)
        if engine is not None:
            engine.destroy()
        trainer.engine = None
        if getattr(trainer, "lock", None) is not None:  # not trainer.close(): the process group serves the next row
            trainer.lock.release()
        del trainer
        gc.collect()


def header(args) -> list[str]:
    import deepspeed
    if args.cpu_smoke:
        where = f"CPU smoke test ({torch.get_num_threads()} threads): toy sizes, fp32, nothing here measures a GPU"
    else:
        where = f"{torch.cuda.get_device_name()}, 1 GPU"
    return [f"# GPU check ({time.strftime('%Y-%m-%d %H:%M')})", "",
            f"{where}; torch {torch.__version__}, DeepSpeed {deepspeed.__version__}; "
            f"{args.micro_batch} x {args.seq_len} tokens per step; median of {args.steps} timed steps after "
            f"{args.warmup} warm-up steps.", "",
            "| model | run | precision | ZeRO | compile | optimizer | step ms | tokens/s | MFU | peak GiB |",
            "|---|---|---|---|---|---|---|---|---|---|"]


def table_row(label: str, row: str, config, measured: dict | None, note: str = "") -> str:
    t = config.train
    cells = [label, row, t.precision, str(t.zero_stage), "on" if t.compile else "off", config.optim.name]
    if measured is None:
        return "| " + " | ".join(cells + [note.replace("|", "/"), "", "", ""]) + " |"
    m = measured
    cells += [f"{m['step_ms']:.1f}", f"{m['tokens_per_s']:,.0f}",
              "n/a" if m["mfu"] is None else f"{100 * m['mfu']:.1f}%",
              "n/a" if m["peak_gib"] is None else f"{m['peak_gib']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def run(args) -> list[str]:
    from bench.bench_train import make_random_shards
    from cluster.env import resolve_dist_env

    started = time.perf_counter()
    models = SMOKE_MODELS if args.cpu_smoke else MODELS
    rows = [(name, overrides) for name, overrides in ROWS if not (args.cpu_smoke and name == "compile")]
    lines = []

    def say(line: str) -> None:  # the table as it grows: a run cut short still shows its rows
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tokens = (args.steps + args.warmup + 2) * args.micro_batch * (args.seq_len + 1) * len(rows) + 10_000
        data = make_random_shards(Path(tmp) / "shards", tokens=tokens)
        # every config is checked before the first row runs: a bad one is one line, before minutes of GPU time
        plan = [(label, row, row_config(file, extra, overrides, args, data, Path(tmp) / f"run{m}-{r}"))
                for m, (label, file, extra) in enumerate(models) for r, (row, overrides) in enumerate(rows)]
        for line in header(args):
            say(line)
        env = resolve_dist_env()  # once: the first setup() exports RANK/WORLD_SIZE, which would read as torchrun's
        for label, row, config in plan:
            if time.perf_counter() - started > args.budget_s:
                say(table_row(label, row, config, None, f"skipped: past the {args.budget_s:.0f} s budget"))
                continue
            try:
                say(table_row(label, row, config, measure(config, env, args)))
            except GPTStackError as e:  # a setting the trainer refuses (one line): the row says why
                say(table_row(label, row, config, None, f"refused: {' '.join(str(e).split())}"))
    say("")
    if args.cpu_smoke:
        say("compile: not run by --cpu-smoke (torch.compile on a CPU takes minutes and measures nothing about the "
            "GPU).")
    say(f"Total {time.perf_counter() - started:.0f} s. MFU = the trainer's FLOPs per token (6N + 12LHQT) x tokens/s "
        f"over the GPU's dense bf16 peak (model/metrics.py); peak GiB = torch.cuda.max_memory_allocated() during "
        f"the row.")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not args.cpu_smoke and not torch.cuda.is_available():
            raise NoGPU("bench/gpu_check.sh measures the GPU path and torch sees no CUDA GPU here "
                        "(torch.cuda.is_available() is False); --cpu-smoke runs its logic at a toy size on the CPU")
        lines = run(args)
    except GPTStackError as error:
        exit_with_error(error)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"table written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
