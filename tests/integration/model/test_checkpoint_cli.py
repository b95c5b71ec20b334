"""`python -m model.checkpoint latest`, the answer slurm/pretrain.sh reads: what --resume auto would load, or exit 1."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT
from tests.support.checkpoints import checkpoint_ladder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return checkpoint_ladder(tmp_path / "run")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.checkpoint", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_latest_cli_prints_what_resume_auto_would_load_or_exits_1(run_dir, tmp_path):
    found = run_cli("latest", str(run_dir))
    assert found.returncode == 0 and found.stdout == f"{run_dir / 'checkpoints' / 'step_1000000'}\n"
    step = run_cli("latest", "--step", str(run_dir))
    assert step.returncode == 0 and step.stdout == "1000000\n"
    (tmp_path / "fresh").mkdir()
    for empty in (tmp_path / "fresh", tmp_path / "absent"):
        none = run_cli("latest", "--step", str(empty))
        assert none.returncode == 1 and none.stdout == "" and none.stderr == ""
