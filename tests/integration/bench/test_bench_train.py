"""bench/bench_train.py runs every part to completion in its smallest setting (--quick); the figures are timings
and byte counts of a toy model, so only their presence is checked. Its memory part starts 2 ranks, whose
rendezvous listens on every interface: it runs in a loopback-only network namespace."""
import os
import re
import subprocess
import sys

from tests.support.loopback_netns import shared_netns
from tests.support import REPO_ROOT


def test_bench_train_quick_runs_both_parts():
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = subprocess.run(shared_netns().wrap([sys.executable, "bench/bench_train.py", "--quick"]), cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=900)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    # the speed part puts two Trainers and a bare loop side by side in one process
    for runner in ("bare PyTorch loop", "model.train ZeRO-0", "model.train ZeRO-2"):
        assert re.search(rf"^{runner} +[\d.]+ +[\d,]+ +[\d.]+x", out, re.M), out[-3000:]
    # the memory part: a row per ZeRO stage, twice (gradients live, then freed)
    assert out.count("memory: model tiny, 2 ranks") == 2, out[-3000:]
    assert len(re.findall(r"^[0-3] +(?:[\d.]+ +){4}[\d.]+x", out, re.M)) == 8, out[-3000:]
