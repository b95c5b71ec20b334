"""bench/bench_model.py runs to completion in its smallest setting (its figures are not checked: they are timings)."""
import subprocess
import sys

from tests.support import REPO_ROOT


def test_bench_model_quick_runs_and_prints_its_table():
    result = subprocess.run([sys.executable, "bench/bench_model.py", "--quick", "--threads", "1"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and "training step" in rows[1] and "KV cache" in rows[2] and "HF generate" in rows[3]
