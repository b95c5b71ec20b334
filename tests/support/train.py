"""Helpers shared by the trainer tests (tests/integration/model/ and others): real shards, real launches."""
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.shards import build_manifest, shard_entry, shard_name, write_manifest, write_shard
from pipeline.tokenizer import get_tokenizer

from tests.support import REPO_ROOT, SHARED_DATA
from tests.support.loopback_netns import shared_netns

SHARED_TEXT = SHARED_DATA / "text" / "dclm_majority_data.jsonl"

# The model every trainer test trains: 2 layers, 64 wide, 64-token sequences; 512 tokens per step.
TINY = ["--config", str(REPO_ROOT / "configs" / "tiny-cpu.yaml"),
        "--set", "model.block_size=64", "--set", "data.seq_len=64", "--set", "train.micro_batch_size=4",
        "--set", "train.tokens_per_step=512", "--set", "optim.warmup_steps=2", "--set", "eval.val_batches=2",
        "--set", "log.tensorboard=false"]
# The shared tiny run's cadence (tests/integration/conftest.py: tiny_run): 1 rank, ZeRO-1 (so DeepSpeed writes both
# its model-states and its optimizer-states file), a checkpoint and a validation every 2 steps, the last 3 kept.
CADENCE = ["--set", "train.zero_stage=1", "--set", "checkpoint.every=2", "--set", "checkpoint.keep_last=3",
           "--set", "eval.every=2"]
TINY_RUN_STEPS = 4  # so the shared run holds checkpoints/step_000002 and step_000004


def make_shards(folder: Path, train_shards: int = 2) -> Path:
    """Tokenize real web text (the dclm sample) with tiktoken's GPT-2 BPE into val + train shards + manifest."""
    encoding = get_tokenizer("gpt2").encoding
    documents = [json.loads(line)["text"] for line in SHARED_TEXT.read_text().splitlines() if line.strip()]
    tokens = []
    for text in documents:
        tokens.extend(encoding.encode_ordinary(text))
        tokens.append(encoding.eot_token)
    tokens = np.array(tokens, dtype=np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    val_size = 20_000
    pieces = [("val", tokens[:val_size])] + [("train", part) for part in np.array_split(tokens[val_size:], train_shards)]
    entries = []
    for index, (split, part) in enumerate(pieces):
        name = shard_name(split, index)
        entries.append(shard_entry(name, split, len(part), 0, write_shard(folder / name, part)))
    write_manifest(folder, build_manifest(entries, "gpt2", encoding.n_vocab, encoding.eot_token,
                                          command="tests/train_support.py"))
    return folder


def free_port(low: int | None = None, high: int | None = None) -> int:
    """A TCP port on 127.0.0.1 nobody listens on (any, or one in [low, high))."""
    candidates = [0] if low is None else random.sample(range(low, high), 200)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in [{low}, {high})")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def train_env() -> dict:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    return env


def train_command(nproc: int, args: list[str]) -> list[str]:
    """`python -m model.train ARGS` on 1 rank, or torchrun on nproc ranks on 127.0.0.1."""
    if nproc == 1:  # one process joins an in-memory store: no server at all
        return [sys.executable, "-m", "model.train", *args]
    # torch's TCPStore listens on every interface: the ranks run in a loopback-only network namespace
    return shared_netns().wrap([
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "model.train", *args])


def deepspeed_command(nproc: int, args: list[str]) -> list[str]:
    """The `deepspeed` launcher on this machine (it adds --local_rank=N to the trainer's arguments)."""
    return shared_netns().wrap([
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(nproc), "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "--module", "model.train", *args])


def run_train(nproc: int, args: list[str], timeout: int = 300, launcher: str = "torchrun",
              **kwargs) -> subprocess.CompletedProcess:
    command = deepspeed_command(nproc, args) if launcher == "deepspeed" else train_command(nproc, args)
    return subprocess.run(command, cwd=REPO_ROOT, env=train_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def step_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}
