"""The loader's cost when training on a mixture of three shard folders (issue 16). Target: <= 1% of step time.

1. in the trainer: model.train's step (Trainer.train_step) on 1 rank, reading one folder and reading a mixture of
   three folders (weights 0.5 / 0.3 / 0.2), one step of each in turn so a shared machine's load hits both alike;
   the loader's share is the time spent in next_batch() over the step time (the figure bench_train.py reports
   for one folder).
2. the loader alone at a GPU run's batch shape (default GPT-2 124M's: 16 sequences of 1024 tokens per
   micro-batch): microseconds per micro-batch for one folder and for the mixture, over many consecutive
   micro-batches (so the mixture's per-block interleave and each source's epoch permutations are included).

    DS_ACCELERATOR=cpu python bench/bench_mixture.py
    DS_ACCELERATOR=cpu python bench/bench_mixture.py --steps 10 --batches 2000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_train beside this file
os.environ.setdefault("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda")

from bench_train import bench_config, interleaved_steps, make_random_shards  # noqa: E402
from cluster.env import resolve_dist_env  # noqa: E402
from model.data.batches import TokenBatches  # noqa: E402
from model.data.mixture_batches import MixtureBatches, SourceSpec  # noqa: E402
from model.train import Trainer  # noqa: E402

WEIGHTS = {"web": 0.5, "wiki": 0.3, "code": 0.2}


def make_sources(root: Path, tokens: int) -> dict[str, Path]:
    # Sizes differ so the smaller sources wrap into new epochs (new permutations) during the measurement.
    sizes = {"web": tokens, "wiki": tokens // 4, "code": tokens // 16}
    return {name: make_random_shards(root / name, tokens=size) for name, size in sizes.items()}


def mixture_config(args, folders: dict[str, Path], run_dir: Path):
    config = bench_config(args, folders["web"], run_dir, 0)
    config.data.dir = None
    config.data.sources = [{"name": name, "dir": str(folders[name]), "weight": w} for name, w in WEIGHTS.items()]
    return config


def in_trainer(args, folders: dict[str, Path], tmp: Path) -> None:
    args.world = 1
    env = resolve_dist_env()
    runners = {}
    for label, config in (("one folder", bench_config(args, folders["web"], tmp / "one", 0)),
                          ("mixture of 3", mixture_config(args, folders, tmp / "mix"))):
        trainer = Trainer(config, env, "none")
        trainer.setup()
        runners[label] = trainer
    times, data_times = interleaved_steps(runners, args.steps)
    print(f"\n1. in the trainer: model {args.model}, {args.batch} x {args.seq_len} tokens per step, 1 rank, ZeRO-0 "
          f"{args.precision}, {args.steps} interleaved steps each, {torch.get_num_threads()} threads")
    print(f"{'data':<14} {'median step s':>14} {'loader ms/step':>15} {'loader share':>13} {'target':>7}")
    for name in runners:
        share = sum(data_times[name]) / sum(times[name])
        print(f"{name:<14} {statistics.median(times[name]):>14.4f} "
              f"{1000 * statistics.median(data_times[name]):>15.3f} {100 * share:>12.3f}% {'<= 1%':>7}")


def loader_alone(args, folders: dict[str, Path]) -> None:
    loaders = {
        "one folder": TokenBatches(folders["web"], "train", args.gpu_batch, args.gpu_seq_len, seed=1),
        "mixture of 3": MixtureBatches([SourceSpec(n, str(folders[n]), w) for n, w in WEIGHTS.items()], "train",
                                       args.gpu_batch, args.gpu_seq_len, seed=1),
    }
    print(f"\n2. the loader alone: {args.batches} consecutive micro-batches of {args.gpu_batch} x {args.gpu_seq_len} "
          f"tokens (first batch, which draws the first permutations, included)")
    print(f"{'data':<14} {'us per micro-batch':>19} {'vs one folder':>14}")
    reference = None
    for name, loader in loaders.items():
        start = time.perf_counter()
        for _ in range(args.batches):
            loader.next_batch()
        per_batch = (time.perf_counter() - start) / args.batches
        reference = reference or per_batch
        print(f"{name:<14} {1e6 * per_batch:>19.1f} {per_batch / reference:>13.2f}x")
    if isinstance(loaders["mixture of 3"], MixtureBatches):
        epochs = {n: f"{p['epochs']:.2f}" for n, p in loaders["mixture of 3"].progress().items()}
        print(f"epochs reached by the mixture's sources: {epochs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step (part 1)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per runner (part 1)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--source-tokens", type=int, default=8_000_000, help="train tokens of the largest source")
    parser.add_argument("--gpu-batch", type=int, default=16, help="part 2: sequences per micro-batch")
    parser.add_argument("--gpu-seq-len", type=int, default=1024, help="part 2: tokens per sequence")
    parser.add_argument("--batches", type=int, default=1000, help="part 2: micro-batches timed")
    args = parser.parse_args()
    print("command: DS_ACCELERATOR=%s python bench/bench_mixture.py %s" % (os.environ["DS_ACCELERATOR"],
                                                                          " ".join(sys.argv[1:])))
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_sources(Path(tmp), args.source_tokens)
        loader_alone(args, folders)
        in_trainer(args, folders, Path(tmp))


if __name__ == "__main__":
    main()
