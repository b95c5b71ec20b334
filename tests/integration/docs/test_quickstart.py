"""The README's first command, `bash scripts/quickstart.sh` (English) and `bash scripts/quickstart.sh --zh` (Chinese:
its own tokenizer), end to end with few training steps: prepare, inspect, train, sample, as a learner runs them.

The script runs from a scratch folder that looks like the repository root (its files linked in, `data/` and `runs/`
fresh), with `scripts/setup_env.sh` replaced by a stub: the test runs inside the environment that setup made, and
must not reinstall it.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shards import read_manifest
from tests.support import REPO_ROOT

SETUP_STUB = 'export DS_ACCELERATOR=cpu\n'  # what setup_env.sh leaves behind on a machine without a GPU


def scratch_root(folder: Path) -> Path:
    folder.mkdir()
    for entry in REPO_ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in {"data", "runs", "logs", "scripts"}:
            (folder / entry.name).symlink_to(entry)
    (folder / "scripts").mkdir()
    (folder / "scripts" / "quickstart.sh").symlink_to(REPO_ROOT / "scripts" / "quickstart.sh")
    (folder / "scripts" / "setup_env.sh").write_text(SETUP_STUB)
    return folder


def run_quickstart(root: Path, *args: str) -> subprocess.CompletedProcess:
    # a shortened run: 30 steps, evaluated twice (the configs evaluate every 25 or 100 steps)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TRAIN_STEPS": "30", "EVAL_EVERY": "15", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "scripts/quickstart.sh", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=840)


def validation_losses(output: str, label: str) -> list[float]:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return [float(value) for value in re.findall(r"\d+: (\d+\.\d+)", line)]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_quickstart_prepares_trains_and_writes(tmp_path, language):
    root = scratch_root(tmp_path / "repo")
    result = run_quickstart(root, *(["--zh"] if language == "zh" else []))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    losses = validation_losses(out, "validation loss by step")
    assert len(losses) >= 2 and losses[-1] < losses[0], out[-3000:]  # it learns
    generated = out.split("==> 4. sample", 1)[1]
    if language == "zh":
        manifest = read_manifest(root / "data" / "sample-zh")
        assert manifest["corpus"] == "sample-zh" and manifest["vocab_size"] == 4096  # its own tokenizer
        assert (root / "runs" / "quickstart-zh" / "checkpoints").is_dir()
        bpb = validation_losses(out, "validation bits per byte by step")
        assert len(bpb) == len(losses) and bpb[-1] < bpb[0]
        assert sum("\u4e00" <= c <= "\u9fff" for c in generated) >= 20, generated  # Chinese text comes out
    else:
        assert read_manifest(root / "data" / "sample")["tokenizer"] == "gpt2"
        assert "The history of the city" in generated
