"""Two optimizer steps of the trainer's own optimizer (model/optim.py, optim.name=muon) inside a real DeepSpeed engine
(model/engine.py), recording what a test needs to recompute both steps by hand (tests/integration/model/test_muon.py).

    torchrun --nproc-per-node 2 -m tests.support.muon_step OUT PRECISION [PRECISION ...]

For each precision, each rank writes OUT/rank{R}_{PRECISION}.pt: the weights before the first step, then for each step
the gradient DeepSpeed hands the optimizer (accumulated over the micro-batches and averaged over the ranks, before
clipping), each param group's learning rate and the weights after the step. Each rank trains on its own random tokens,
so the gradients differ until DeepSpeed averages them.
"""
import sys
from pathlib import Path

import torch

from cluster.env import resolve_dist_env
from model.build import build_model
from model.config import batch_layout, load_config
from model.engine import build_engine, init_distributed, seed_everything
from model.optim import build_lr_scheduler, build_optimizer
from tests.support import REPO_ROOT

STEPS = 2
# The trainer tests' tiny model (tests/support/train.py: TINY) with a 512-token vocabulary, so that every tensor fits in
# the record; 2 micro-batches of 4 sequences per rank and step on 2 ranks.
OVERRIDES = ["model.block_size=64", "model.vocab_size=512", "data.seq_len=64", "train.micro_batch_size=4",
             "train.tokens_per_step=1024", "optim.warmup_steps=2", "optim.name=muon", "train.zero_stage=0"]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def run(out: Path, precision: str, env) -> None:
    config = load_config(REPO_ROOT / "configs" / "tiny-cpu.yaml", [*OVERRIDES, f"train.precision={precision}"])
    seed_everything(config.train.seed)
    model = build_model(config.gpt_config())
    optimizer = build_optimizer(model, config.optim, fused=False)
    engine = build_engine(model, optimizer, build_lr_scheduler(optimizer, config), config, env.world_size)
    micro_batch, grad_accum = batch_layout(config, env.world_size)
    tokens = torch.Generator().manual_seed(100 + env.rank)
    record = {"grad_clip": config.train.grad_clip, "betas": (config.optim.beta1, config.optim.beta2),
              "eps": config.optim.eps, "weight_decay": config.optim.weight_decay,
              "momentum": config.optim.muon_momentum, "before": snapshot(engine.module), "steps": []}
    for _ in range(STEPS):
        for _ in range(grad_accum):
            x = torch.randint(0, config.gpt_config().vocab_size, (micro_batch, config.data.seq_len + 1),
                              generator=tokens)
            _, loss = engine(x[:, :-1], x[:, 1:])
            engine.backward(loss)
            if engine.is_gradient_accumulation_boundary():  # gradients all-reduced; the step clips and applies them
                grads = {name: p.grad.detach().clone() for name, p in engine.module.named_parameters()}
                lrs = {"muon" if g["use_muon"] else "adamw": g["lr"] for g in optimizer.param_groups}
            engine.step()
        record["steps"].append({"grad": grads, "lr": lrs, "after": snapshot(engine.module)})
    torch.save(record, out / f"rank{env.rank}_{precision}.pt")


def main() -> None:
    out, precisions = Path(sys.argv[1]), sys.argv[2:]
    env = resolve_dist_env()
    init_distributed(env)
    for precision in precisions:
        run(out, precision, env)
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
