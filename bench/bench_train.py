"""Trainer benchmarks, each a ratio against a reference measured in the same run.

1. speed: tokens/s of model.train's training step (Trainer.train_step: loader, DeepSpeed engine forward,
   backward and step, loss all-reduce) on 1 rank with ZeRO-0 and ZeRO-2, against a bare PyTorch loop with the
   same model, batches, AdamW, LR schedule, clipping and steps. Steps alternate between the three so a
   shared machine's load hits them alike; the median step time of each is compared. Also: the loader's share
   of the step time. Targets: >= 0.95x, <= 1%.
2. memory: bytes of model + optimizer state that each rank really holds (parameters, gradients and
   DeepSpeed's gradient buffers, fp32 master copies, AdamW moments) with 2 ranks for ZeRO stages 0-3, after one
   training step. Target ratios vs stage 0: <= 0.6 / 0.55 / 0.55.

    DS_ACCELERATOR=cpu python bench/bench_train.py                 # both parts (part 2 starts 2 ranks)
    DS_ACCELERATOR=cpu python bench/bench_train.py --part speed --model mini --steps 20
    DS_ACCELERATOR=cpu python bench/bench_train.py --part memory --memory-model gpt2 --memory-precision fp32
    DS_ACCELERATOR=cpu python bench/bench_train.py --quick         # smallest setting: does it run? (tests)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda")

from cluster.env import resolve_dist_env  # noqa: E402
from model.build import build_model  # noqa: E402
from model.config import load_config  # noqa: E402
from model.data.batches import TokenBatches  # noqa: E402
from model.optim import build_optimizer, learning_rate  # noqa: E402
from model.train import Trainer  # noqa: E402
from pipeline.shards import build_manifest, shard_entry, shard_name, write_manifest, write_shard  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# --quick: every part at its smallest, to check that the script still runs; the figures it prints mean nothing.
QUICK = {"model": "tiny", "seq_len": 32, "batch": 2, "steps": 2, "memory_model": "tiny", "memory_seq_len": 32,
         "shard_tokens": 20_000}


def make_random_shards(folder: Path, tokens: int = 2_000_000) -> Path:
    """Shards of random GPT-2 token ids: the speed of a step does not depend on what the tokens say."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (split, count) in enumerate([("val", 100_000), ("train", tokens)]):
        name = shard_name(split, index)
        digest = write_shard(folder / name, rng.integers(0, 50257, count, dtype=np.uint16))
        entries.append(shard_entry(name, split, count, 0, digest))
    write_manifest(folder, build_manifest(entries, "gpt2", 50257, 50256, command="bench"))
    return folder


def bench_config(args, data: Path, run_dir: Path, zero_stage: int):
    return load_config(REPO / "configs" / "tiny-cpu.yaml", [
        f"model.name={args.model}", f"model.block_size={args.seq_len}", f"data.seq_len={args.seq_len}",
        f"train.micro_batch_size={args.batch}", f"train.tokens_per_step={args.batch * args.seq_len * args.world}",
        f"train.zero_stage={zero_stage}", f"train.precision={args.precision}", f"train.max_steps={10**6}",
        "eval.every=0", "log.tensorboard=false", "data.verify_checksums=false", "optim.warmup_steps=10",
        f"run_dir={run_dir}", f"data.dir={data}"])


class BareLoop:
    """The nanoGPT loop: loader, forward, backward, clip, AdamW step, LR schedule; no DeepSpeed."""

    def __init__(self, config, data: Path):
        torch.manual_seed(config.train.seed)
        self.config = config
        self.model = build_model(config.gpt_config())  # either family (model.arch)
        self.optimizer = build_optimizer(self.model, config.optim, fused=False)
        self.batches = TokenBatches(data, "train", config.train.micro_batch_size, config.data.seq_len,
                                    seed=config.data.seed)
        self.step_index = 0

    def train_step(self) -> dict:
        lr = learning_rate(self.step_index, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.batches.next_batch()
        _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_index += 1
        return {"loss": loss.item(), "data_time": 0.0}


def interleaved_steps(runners: dict, steps: int) -> tuple[dict, dict]:
    """`steps` timed train_step()s of each runner after 2 warm-up steps (the first allocate buffers); returns the
    step times and loader times per runner. One step of each runner per cycle, in rotating order: a shared
    machine's changing load hits all alike (blocks of steps per runner would not be comparable)."""
    for runner in runners.values():
        for _ in range(2):
            runner.train_step()
    times = {name: [] for name in runners}
    data_times = {name: [] for name in runners}
    names = list(runners)
    for cycle in range(steps):
        for name in names[cycle % len(names):] + names[:cycle % len(names)]:
            start = time.perf_counter()
            result = runners[name].train_step()
            times[name].append(time.perf_counter() - start)
            data_times[name].append(result["data_time"])
    return times, data_times


def speed(args) -> None:
    args.world = 1
    with tempfile.TemporaryDirectory() as tmp:
        data = make_random_shards(Path(tmp) / "shards", tokens=args.shard_tokens)
        runners = {"bare PyTorch loop": BareLoop(bench_config(args, data, Path(tmp) / "bare", 0), data)}
        env = resolve_dist_env()  # once: the first setup() exports RANK/WORLD_SIZE, which would read as torchrun's
        for stage in (0, 2):
            trainer = Trainer(bench_config(args, data, Path(tmp) / f"zero{stage}", stage), env, "none")
            trainer.setup()
            runners[f"model.train ZeRO-{stage}"] = trainer
        times, data_times = interleaved_steps(runners, args.steps)
        tokens = args.batch * args.seq_len
        reference = statistics.median(times["bare PyTorch loop"])
        print(f"\nspeed: model {args.model}, {args.batch} x {args.seq_len} tokens per step, 1 rank, "
              f"{args.steps} interleaved steps each, device {os.environ['DS_ACCELERATOR']}, "
              f"{torch.get_num_threads()} threads")
        print(f"{'runner':<22} {'median step s':>14} {'tokens/s':>10} {'vs bare':>8} {'loader share':>13}")
        for name in runners:
            step = statistics.median(times[name])
            share = sum(data_times[name]) / sum(times[name])
            print(f"{name:<22} {step:>14.4f} {tokens / step:>10,.0f} {reference / step:>7.3f}x "
                  f"{'-' if name.startswith('bare') else f'{100 * share:.3f}%':>13}")


def _tensors_in(value, depth: int = 0):
    """Tensors inside nested lists/tuples/dicts (DeepSpeed keeps its buffers in such containers)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item, depth + 1)


def model_state_bytes(engine) -> dict[str, int]:
    """Bytes of model and optimizer state this rank really holds, by kind, each storage counted once.

    params: the module's parameters (under ZeRO-3 only this rank's partition, `ds_tensor`); grads: gradient
    tensors and DeepSpeed's gradient partitions/buckets; optimizer: everything else the optimizer holds - fp32
    master partitions and the AdamW moments. This is what ZeRO shards; activations are not included.
    """
    seen: set[int] = set()

    def size(tensors) -> int:
        total = 0
        for tensor in tensors:
            if tensor is None or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            if storage.nbytes() == 0 or storage.data_ptr() in seen:
                continue
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return total

    parameters = list(engine.module.parameters())
    params = size([p.data for p in parameters] + [getattr(p, "ds_tensor", None) for p in parameters])
    optimizer = engine.optimizer
    inner = getattr(optimizer, "optimizer", optimizer)  # the torch AdamW that ZeRO wraps
    moments = size(_tensors_in([inner.state[p] for p in inner.state]))
    masters = size(_tensors_in([group["params"] for group in inner.param_groups]))
    grad_tensors = [p.grad for p in parameters] + [p.grad for g in inner.param_groups for p in g["params"]]
    grad_tensors += [t for name, value in vars(optimizer).items() if "grad" in name or "ipg" in name
                     for t in _tensors_in(value)]
    grads = size(grad_tensors)
    other = size(t for value in vars(optimizer).values() for t in _tensors_in(value))
    optim = moments + masters + other
    return {"params": params, "grads": grads, "optimizer": optim, "total": params + grads + optim}


def memory_worker(args) -> None:
    """One of the 2 ranks (started by torchrun): one training step per ZeRO stage, then count its tensors."""
    import gc
    env = resolve_dist_env()
    data = Path(args.data)
    rows = {}
    for stage in (0, 1, 2, 3):
        trainer = Trainer(bench_config(args, data, Path(args.data).parent / f"mem{stage}", stage), env, "none")
        trainer.setup()
        engine = trainer.engine
        trainer.train_step()  # first step allocates the optimizer state
        x, y = trainer.train_batches.next_batch()
        _, loss = engine(x, y)
        engine.backward(loss)  # gradients are live (reduced, partitioned under ZeRO-2/3): the peak
        peak = list(model_state_bytes(engine).values())
        engine.step()
        between = list(model_state_bytes(engine).values())
        counts = torch.tensor(peak + between, dtype=torch.float64)
        gathered = [torch.zeros_like(counts) for _ in range(env.world_size)]
        torch.distributed.all_gather(gathered, counts)
        rows[stage] = [g.tolist() for g in gathered]
        trainer.engine.destroy()
        del trainer
        gc.collect()
    if env.is_main:
        print("MEMORY_JSON " + json.dumps(rows))


def memory(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = make_random_shards(Path(tmp) / "shards", tokens=min(300_000, args.shard_tokens))
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                   "127.0.0.1", "--master-port", str(port), __file__, "--memory-worker", "--data", str(data),
                   "--model", args.model, "--precision", args.precision, "--seq-len", str(args.seq_len),
                   "--batch", str(args.batch)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        line = next((l for l in result.stdout.splitlines() if l.startswith("MEMORY_JSON ")), None)
        if line is None:
            sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
        rows = {int(k): v for k, v in json.loads(line.split(" ", 1)[1]).items()}
    targets = {0: "", 1: "<= 0.6", 2: "<= 0.55", 3: "<= 0.55"}
    for label, offset in (("after backward, before the optimizer step (gradients live)", 0),
                          ("between steps (gradients freed)", 4)):
        base = max(r[offset + 3] for r in rows[0])
        print(f"\nmemory: model {args.model}, 2 ranks, {args.precision}, bytes per rank {label}, max over ranks")
        print(f"{'ZeRO stage':<11} {'params MB':>10} {'grads MB':>9} {'optim MB':>9} {'total MB':>9} "
              f"{'vs stage 0':>11} {'target':>8}")
        for stage, per_rank in rows.items():
            worst = max((r[offset:offset + 4] for r in per_rank), key=lambda r: r[3])
            print(f"{stage:<11} {worst[0] / 1e6:>10.2f} {worst[1] / 1e6:>9.2f} {worst[2] / 1e6:>9.2f} "
                  f"{worst[3] / 1e6:>9.2f} {worst[3] / base:>10.3f}x {targets[stage]:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["speed", "memory", "all"], default="all")
    parser.add_argument("--model", default="tiny", help="a model.gpt size name (tiny, mini, small, gpt2...)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per runner (interleaved)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="speed part")
    parser.add_argument("--memory-model", default="gpt2",
                        help="memory part: a real GPT-2 124M by default (the tiny model is 97%% embedding, a "
                             "single tensor, which no ZeRO stage can split the way it splits a real model)")
    parser.add_argument("--memory-precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--memory-seq-len", type=int, default=64)
    parser.add_argument("--shard-tokens", type=int, default=2_000_000, help="random training tokens written")
    parser.add_argument("--quick", action="store_true", help="the smallest setting of every part (" +
                        ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + "): does it run?")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    args.world = 2
    if args.memory_worker:
        memory_worker(args)
        return
    print("command: DS_ACCELERATOR=%s python bench/bench_train.py %s" % (os.environ["DS_ACCELERATOR"],
                                                                        " ".join(sys.argv[1:])))
    if args.part in ("memory", "all"):
        memory(argparse.Namespace(**{**vars(args), "model": args.memory_model, "precision": args.memory_precision,
                                     "seq_len": args.memory_seq_len, "batch": 1}))
    if args.part in ("speed", "all"):
        speed(args)


if __name__ == "__main__":
    main()
