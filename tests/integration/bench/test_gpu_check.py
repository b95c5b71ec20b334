"""bench/gpu_check.sh: without a GPU it stops at once with one error line; --cpu-smoke runs every row of the check
through the real trainer at a toy size and writes the table (its timings are not checked: a toy on a busy CPU)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support import REPO_ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_gpu_check_without_a_gpu_is_one_error_line():
    result = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "--cpu-smoke" in result.stderr


def test_gpu_check_cpu_smoke_writes_every_row(tmp_path):
    out = tmp_path / "table.md"
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-smoke", "--steps", "2", "--out", str(out)],
                            cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    # both families, each with the base row, ZeRO-0 and Muon (compile is left to the GPU), every one measured
    assert [tuple(r.split(" | ")[:2]) for r in rows] == [
        (f"| {model}", run) for model in ("GPT-2 tiny", "qwen3 tiny") for run in ("base", "ZeRO-0", "Muon")], table
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2:6] in (["fp32", "1", "off", "adamw"], ["fp32", "0", "off", "adamw"],
                              ["fp32", "0", "off", "muon"]), row
        assert re.fullmatch(r"[\d.]+", cells[6]) and float(cells[6]) > 0, row  # step ms
        assert re.fullmatch(r"[\d,]+", cells[7]) and int(cells[7].replace(",", "")) > 0, row  # tokens/s
    assert all(row in result.stdout.splitlines() for row in rows)  # the same table on stdout
