"""The GPT-2 recipe against the modern one, trained on this CPU: val_bpb against training FLOPs, the compute ratio, and
an ablation of every change in the spirit of modded-nanogpt's record log.

    python bench/bench_recipe.py                  # English + Chinese, both recipes and the ablation (32 CPU-minutes)
    python bench/bench_recipe.py --quick --data en=DIR --data zh=DIR --out /tmp/r   # toy settings: does it run?
    python bench/bench_recipe.py --data en=data/mine                                 # your own shards

The GPT-2 recipe: model/gpt.py (learned positions, LayerNorm, GELU, tied embeddings), AdamW, the token stream. The
modern recipe: model/qwen3.py (RoPE, RMSNorm without biases, SwiGLU, QK-norm, GQA, untied head), Muon for the hidden
matrices (optim.name=muon), document-aligned rows (data.packing=bos_aligned). Both at the same non-embedding
parameters (12 n_embd^2 per layer), on the same shards, for the same steps and tokens per step, with the same
schedule; every run goes through model.train's Trainer (DeepSpeed, ZeRO-0, fp32, one rank), driven step by step.
Each optimizer at its own tuned rate (a sweep on zh, docs/modern-gpt.md): AdamW 6e-3 wherever it trains everything;
with Muon, Muon 0.02 (nanochat's) for the hidden matrices and AdamW 2.4e-2 for the embeddings, head and norms.

Reported (bench/results/recipe.json and .md, the figure docs/figures/recipe_val_bpb.png):
  * per run, val_bpb of the held-out split (the shards' val split, the stream's windows whatever the packing)
    against training FLOPs (the trainer's flops_per_token x tokens);
  * per language, the compute the modern recipe needs to reach the GPT-2 recipe's final val_bpb: where its curve
    (mean over seeds, linear between evaluations) crosses that value, over the GPT-2 run's FLOPs. Its intermediate
    evaluations are taken at a learning rate not yet decayed, so the ratio is an upper bound (target: <= 0.7);
  * the ablation (--ablation-langs): each change alone on GPT-2, and added one by one in the record log's order,
    each row's final val_bpb (mean and range over seeds), its effect against GPT-2 and against the row above, and
    its cost per step (median step time and FLOPs per token against GPT-2).

Without --data the two sample corpora are prepared once into data/bench-recipe/{en,zh} (python -m pipeline.prepare
--corpus sample / sample-zh, each with its own 4,096-token BPE so that the small model's compute goes to its layers
rather than to a 50k-row output head; bits per byte compare across tokenizers).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402

from bench.recipe_model import Features, build  # noqa: E402
from bench.recipe_report import report  # noqa: E402
from gptstack.errors import GPTStackError, exit_with_error  # noqa: E402

# The changes in the order of modded-nanogpt's record log (rotary, then Muon, QK-norm, untied head, aligned
# batches), with nanochat/Qwen3's RMSNorm, SwiGLU and GQA where the architecture changes are: the architecture first,
# then the optimizer, then the data. (key, label); the first six are Features switches, the last two the trainer's.
CHANGES = [("rope", "RoPE"), ("rmsnorm", "RMSNorm, no biases"), ("swiglu", "SwiGLU"), ("qk_norm", "QK-norm"),
           ("gqa", "GQA"), ("untied", "untied head"), ("muon", "Muon"), ("aligned", "aligned batches")]
ALL = tuple(key for key, _ in CHANGES)
RECIPES = ("GPT-2 recipe", "modern recipe")  # the rows whose whole curve is read (eval_steps)
CORPORA = {"en": "sample", "zh": "sample-zh"}
DEFAULTS = dict(n_layer=3, n_head=4, n_embd=96, seq_len=128, batch=16, steps=200, evals=8, val_batches=8,
                lr=6e-3, muon_adamw_lr=2.4e-2, muon_lr=0.02, warmup=20, seeds=2, threads=1)
QUICK = dict(n_layer=1, n_head=2, n_embd=32, seq_len=32, batch=2, steps=4, evals=2, val_batches=1, warmup=1, seeds=2)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=[], metavar="LANG=DIR",
                   help="a shard folder per language (default: en and zh prepared from the sample corpora)")
    p.add_argument("--ablation-langs", default="zh", help="languages of the ablation rows, comma-separated, or none")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results",
                   help="folder for recipe.json and recipe.md (default bench/results)")
    p.add_argument("--figure", type=Path, default=None,
                   help="the plot (default docs/figures/recipe_val_bpb.png; with --quick: in --out)")
    p.add_argument("--quick", action="store_true", help="toy settings, to check that everything runs (tests)")
    for key, value in DEFAULTS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = p.parse_args(argv)
    for key, value in {**DEFAULTS, **(QUICK if args.quick else {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.figure is None:
        figures = args.out if args.quick else REPO / "docs" / "figures"
        args.figure = figures / "recipe_val_bpb.png"
    if args.steps < args.evals or args.seeds < 1 or args.evals < 1:
        p.error("--steps must be at least --evals, and --seeds and --evals at least 1")
    return args


def shard_folders(args) -> dict[str, Path]:
    """LANG -> shard folder: the --data ones, else the sample corpora prepared once (a missing manifest: again)."""
    if args.data:
        folders = {}
        for item in args.data:
            lang, sep, folder = item.partition("=")
            if not sep or not lang or not folder:
                raise GPTStackError(f"--data {item!r}: expected LANG=DIR, e.g. --data zh=data/sample-zh")
            folders[lang] = Path(folder)
        return folders
    folders = {}
    for lang, corpus in CORPORA.items():
        folder = REPO / "data" / "bench-recipe" / lang
        if not (folder / "manifest.json").is_file():
            print(f"preparing {corpus} into {folder} (once)", flush=True)
            command = [sys.executable, "-m", "pipeline.prepare", "--corpus", corpus, "--tokenizer", "train",
                       "--vocab-size", "4096", "--output", str(folder), "--shard-tokens", "1000000", "--force"]
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if result.returncode != 0:
                tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise GPTStackError(f"preparing {corpus} into {folder} failed: {tail}")
        folders[lang] = folder
    return folders


def plan(args, langs: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(language, row name, changes) of every configuration, each run once per seed: the two recipes in every
    language, and in the ablation languages each change alone and every prefix of the record log's order."""
    rows = []
    ablation = [lang for lang in args.ablation_langs.split(",") if lang in langs]
    for lang in langs:
        rows += [(lang, "GPT-2 recipe", ()), (lang, "modern recipe", ALL)]
        if lang in ablation:
            rows += [(lang, f"alone: {label}", (key,)) for key, label in CHANGES]
            rows += [(lang, f"+ {label}", ALL[:i + 1]) for i, (key, label) in enumerate(CHANGES[1:-1], start=1)]
    return rows


def eval_steps(args, dense: bool) -> list[int]:
    """The steps a run is evaluated at. The two recipes' curves: `args.evals` evenly spaced steps and four early ones
    (a fortieth of the run apart), where a fast recipe crosses the other's final value. An ablation row needs its
    final value: four steps."""
    count = args.evals if dense else min(4, args.evals)
    steps = {args.steps * k // count for k in range(1, count + 1)}
    if dense:
        steps |= {args.steps * k // 40 for k in range(1, 5)}
    return sorted(step for step in steps if step >= 1)


def run_config(args, data: Path, changes: tuple[str, ...], seed: int, run_dir: Path, env, dense: bool) -> dict:
    """One training run through the trainer; val_bpb at eval_steps()."""
    import model.train as train_module
    from model.config import load_config

    evaluate_at = set(eval_steps(args, dense))
    lr = args.muon_adamw_lr if "muon" in changes else args.lr  # each optimizer at its own tuned rate
    overrides = [f"model.n_layer={args.n_layer}", f"model.n_head={args.n_head}", f"model.n_embd={args.n_embd}",
                 f"model.block_size={args.seq_len}", f"data.seq_len={args.seq_len}",
                 f"train.micro_batch_size={args.batch}", f"train.tokens_per_step={args.batch * args.seq_len}",
                 f"train.max_steps={args.steps}", f"optim.lr={lr}", f"optim.min_lr={lr / 10}",
                 f"optim.muon_lr={args.muon_lr}", f"optim.warmup_steps={args.warmup}",
                 f"optim.name={'muon' if 'muon' in changes else 'adamw'}",
                 f"data.packing={'bos_aligned' if 'aligned' in changes else 'stream'}",
                 f"train.seed={seed}", f"eval.every={args.steps}",
                 f"eval.val_batches={args.val_batches}", "log.tensorboard=false", "data.verify_checksums=false",
                 f"run_dir={run_dir}", f"data.dir={data}"]
    config = load_config(REPO / "configs" / "tiny-cpu.yaml", overrides)
    features = Features(**{key: True for key in changes if key in Features.__dataclass_fields__})
    trainer = train_module.Trainer(config, env, "none")
    # The trainer builds model.build.build_model(its config); here the model of `features` at that size instead:
    # the real GPT or Qwen3 where one computes it, bench/recipe_model.py's MixedGPT in between.
    built = {}

    def build_variant(gpt_config):
        built["model"] = build(gpt_config, features)
        return built["model"]

    with swapped(train_module, "build_model", build_variant):
        trainer.setup()
    model, curve, times, cpu_times = built["model"], [], [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for step in range(1, args.steps + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            loss = trainer.train_step()["loss"]
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)  # one thread: the step's work, whatever the load
            trainer.step = step
            if loss != loss or abs(loss) == float("inf"):
                curve.append({"step": step, "diverged": True})
                break
            if step in evaluate_at:
                record = trainer.evaluate()
                tokens = step * config.train.tokens_per_step
                curve.append({"step": step, "tokens": tokens, "flops": trainer.flops_per_token * tokens,
                              "val_bpb": record["val_bpb"], "val_loss": record["val_loss"], "train_loss": loss})
        plan_line = trainer.data.plan(args.steps * config.train.tokens_per_step)
    finally:
        trainer.engine.destroy()
        trainer.lock.release()
    return {"model": type(model).__name__, "params": model.num_parameters(), "flops_per_token": trainer.flops_per_token,
            "step_s": statistics.median(times[2:] or times),
            "step_cpu_s": statistics.median(cpu_times[2:] or cpu_times),
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started,
            "curve": curve, "packing_plan": plan_line}


@contextlib.contextmanager
def swapped(module, name: str, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        torch.set_num_threads(args.threads)
        folders = shard_folders(args)
        from cluster.env import resolve_dist_env
        from pipeline.shards import ShardFolder
        for lang, folder in folders.items():
            ShardFolder(folder)  # a folder that is not shards: one line, before any run
        rows = plan(args, list(folders))
        env = resolve_dist_env()  # once: the first setup() exports RANK/WORLD_SIZE, which would read as torchrun's
        runs, started, cpu_started = [], time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(1, args.seeds + 1):  # seed by seed: a machine's load drifting hits all rows alike
                for index, (lang, name, changes) in enumerate(rows):
                    result = run_config(args, folders[lang], changes, seed, Path(tmp) / f"{seed}-{index}", env,
                                        dense=name in RECIPES)
                    runs.append({"lang": lang, "row": name, "changes": list(changes), "seed": seed, **result})
                    last = result["curve"][-1]
                    print(f"[{time.perf_counter() - started:6.0f} s] {lang} {name:<26} seed {seed}: val_bpb "
                          f"{last.get('val_bpb', float('nan')):.4f}, {1000 * result['step_cpu_s']:.0f} CPU ms/step, "
                          f"{result['model']}", flush=True)
        settings = {key: getattr(args, key) for key in DEFAULTS} | {
            "data": {lang: str(folder) for lang, folder in folders.items()}, "ablation_langs": args.ablation_langs,
            "quick": args.quick, "seconds": round(time.perf_counter() - started),
            "cpu_seconds": round(time.process_time() - cpu_started), "torch": torch.__version__}
        results = {"settings": settings, "changes": CHANGES, "runs": runs}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "recipe.json").write_text(json.dumps(results, indent=1) + "\n")
        text = report(results, args.figure)
        (args.out / "recipe.md").write_text(text)
        print(text)
    except GPTStackError as error:
        exit_with_error(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
