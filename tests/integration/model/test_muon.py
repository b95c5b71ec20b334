"""optim.name=muon in real DeepSpeed runs: the steps equal Muon and AdamW recomputed by hand, and a resume continues
Muon's momentum bit-identically.

Muon runs at ZeRO 0 only (train.zero_stage=1-3 is refused at config load, tests/unit/model/test_muon.py): the one
supported stage is checked here on 2 ranks, in fp32 and in bf16, whose fp32 master weights DeepSpeed keeps per
parameter (FP16_UnfusedOptimizer), so the optimizer still sees whole matrices.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint.layout import DEEPSPEED_TAG
from model.checkpoint.safe_load import load_tensors
from tests.support import REPO_ROOT
from tests.support.loopback_netns import shared_netns
from tests.support.train import TINY, free_port, run_train, step_losses, train_env

NS = (3.4445, -4.7750, 2.0315)  # the quintic Newton-Schulz iteration's coefficients (Keller Jordan, modded-nanogpt)
ADAMW_NAMES = ("transformer.wte.weight", "transformer.wpe.weight")  # GPT-2's embeddings; the head is tied to wte


def reference_newton_schulz(u: torch.Tensor) -> torch.Tensor:
    """Written from the definition, in float64: normalise, then 5 steps of X <- aX + (bA + cA²)X with A = XXᵀ."""
    a, b, c = NS
    x = u.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / (x.norm() + 1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def expected_steps(record: dict, precision: str) -> list[dict[str, torch.Tensor]]:
    """Both recorded steps recomputed from the recorded gradients: clip by the global norm, then Muon (momentum,
    Nesterov, Newton-Schulz, sqrt(max(1, rows/cols))) for the hidden matrices and torch.optim.AdamW for the rest.

    In bf16 DeepSpeed's ZeRO-0 wrapper (FP16_UnfusedOptimizer.initialize_optimizer_states) steps the optimizer once
    on zero gradients when it is built: AdamW's step count and weight decay advance, Muon's update is 0."""
    weights = {name: w.float().clone() for name, w in record["before"].items()}  # fp32 masters, as DeepSpeed keeps
    adamw_params = {name: torch.nn.Parameter(w) for name, w in weights.items() if name in ADAMW_NAMES or w.dim() < 2}
    decayed = [p for name, p in adamw_params.items() if p.dim() == 2]
    adamw = torch.optim.AdamW([{"params": decayed, "weight_decay": record["weight_decay"]},
                               {"params": [p for p in adamw_params.values() if p.dim() < 2], "weight_decay": 0.0}],
                              betas=record["betas"], eps=record["eps"], foreach=False)
    momentum, beta, results = {}, record["momentum"], []
    if precision == "bf16":
        for group in adamw.param_groups:
            group["lr"] = record["steps"][0]["lr"]["adamw"]  # the scheduler's first rate, set before DeepSpeed's step
        for p in adamw_params.values():
            p.grad = torch.zeros_like(p)
        adamw.step()
    for step in record["steps"]:
        grads = {name: g.float() for name, g in step["grad"].items()}
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
        clip = min(1.0, record["grad_clip"] / (norm.item() + 1e-6))
        for group in adamw.param_groups:
            group["lr"] = step["lr"]["adamw"]
        for name, p in adamw_params.items():
            p.grad = grads[name] * clip
        adamw.step()
        for name, w in weights.items():
            if name in adamw_params:
                continue
            g = grads[name].double() * clip
            buf = momentum.setdefault(name, torch.zeros_like(g))
            buf.mul_(beta).add_(g, alpha=1 - beta)
            nesterov = (1 - beta) * g + beta * buf
            scale = max(1.0, w.shape[0] / w.shape[1]) ** 0.5
            weights[name] = (w.double() - step["lr"]["muon"] * scale * reference_newton_schulz(nesterov)).float()
        results.append({**{name: p.detach().clone() for name, p in adamw_params.items()},
                        **{name: w for name, w in weights.items() if name not in adamw_params}})
    return results


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("muon-step")
    command = shared_netns().wrap([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes",
                                   "1", "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                                   "-m", "tests.support.muon_step", str(out), "fp32", "bf16"])
    result = subprocess.run(command, cwd=REPO_ROOT, env=train_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {precision: [torch.load(out / f"rank{rank}_{precision}.pt") for rank in range(2)]
            for precision in ("fp32", "bf16")}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_zero0_steps_equal_muon_and_adamw_recomputed_by_hand(records, precision):
    rank0, rank1 = records[precision]
    # Each rank trained on its own tokens; DeepSpeed averaged the gradients, and the replicas stay identical.
    for step0, step1 in zip(rank0["steps"], rank1["steps"]):
        assert all(torch.equal(step0["grad"][name], step1["grad"][name]) for name in step0["grad"])
        assert all(torch.equal(step0["after"][name], step1["after"][name]) for name in step0["after"])
    # The schedule: warmup over 2 steps, each group from its own base rate (muon_lr 0.02, lr 3e-3 in tiny-cpu)
    assert [s["lr"]["muon"] for s in rank0["steps"]] == pytest.approx([0.01, 0.02])
    assert [s["lr"]["adamw"] for s in rank0["steps"]] == pytest.approx([1.5e-3, 3e-3])

    hidden = [name for name, w in rank0["before"].items() if w.dim() == 2 and name not in ADAMW_NAMES]
    assert len(hidden) == 8  # 2 layers x (c_attn, attn.c_proj, c_fc, mlp.c_proj)
    for step, expected in zip(rank0["steps"], expected_steps(rank0, precision)):
        for name, actual in step["after"].items():
            if precision == "fp32" and name in hidden:  # float32 Newton-Schulz against float64
                torch.testing.assert_close(actual, expected[name], rtol=1e-4, atol=1e-6, msg=name)
            elif precision == "fp32":  # AdamW: torch's own arithmetic, operation for operation
                assert torch.equal(actual, expected[name]), name
            else:  # bf16 weights: the fp32 masters rounded, so at most one bf16 step apart from ours rounded
                torch.testing.assert_close(actual.float(), expected[name].bfloat16().float(), rtol=2**-7, atol=1e-6,
                                           msg=name)
    # The first step moves each matrix by several times the bf16 tolerance (and 100x fp32's): an update other than
    # Muon's (no orthogonalisation, another scale, AdamW) would fail above.
    for name in hidden:
        before = rank0["before"][name].float()
        moved = rank0["steps"][0]["after"][name].float() - before
        assert moved.abs().mean() > 4 * 2**-7 * before.abs().mean(), name


def muon_args(data: Path, run_dir: Path) -> list[str]:
    return [*TINY, "--set", "optim.name=muon", "--set", "checkpoint.every=2", "--set", "eval.every=2",
            "--data", str(data), "--run-dir", str(run_dir), "--max-steps", "4"]


def test_resume_restores_muon_momentum_bit_identically(tiny_shards, tmp_path):
    reference = tmp_path / "reference"
    result = run_train(2, muon_args(tiny_shards, reference))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ZeRO-0" in result.stdout
    # The checkpoint carries the momentum of every hidden matrix (ZeRO 0 keeps the whole optimizer state on rank 0).
    states = load_tensors(next((reference / "checkpoints" / "step_000002" / DEEPSPEED_TAG).rglob("mp_rank_00_*.pt")))
    buffers = [s for s in states["optimizer"]["state"].values() if "momentum_buffer" in s]
    assert len(buffers) == 8 and all(b["momentum_buffer"].abs().sum() > 0 for b in buffers)

    # Resumed from step 2 in a new folder, on 2 ranks: steps 3 and 4 equal the uninterrupted run bit for bit. Step 4's
    # loss is computed after step 3's update, which a lost or zeroed momentum would change.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(reference / "checkpoints" / "step_000002", resumed / "checkpoints" / "step_000002")
    result = run_train(2, muon_args(tiny_shards, resumed))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resumed from" in result.stdout
    expected, actual = step_losses(reference), step_losses(resumed)
    assert {step: actual[step] for step in (3, 4)} == {step: expected[step] for step in (3, 4)}
