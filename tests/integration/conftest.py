"""What several integration files read, built once per session: a tiny GPT-2 shard folder, a short tiny run trained
on it, and a prepared folder of the sample corpus. A test that changes one copies it into its tmp_path first
(shutil.copytree); the fixtures themselves are never written to after they are built.

With several pytest-xdist workers (scripts/test.sh), each fixture is built once for all of them (built_once)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

from pipeline.shards import read_manifest
from tests.support import REPO_ROOT
from tests.support.train import CADENCE, TINY, TINY_RUN_STEPS, make_shards, run_train


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """build(folder) for this session; under pytest-xdist, by the first worker that asks, in the folder all workers
    share (pytest-xdist's documented recipe), while the others wait on its lock and then read the result."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        done = folder.with_name(f"{name}.done")
        if done.is_file():
            return Path(done.read_text())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        result = build(folder)
        done.write_text(str(result))
        return result


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """Real web text (the dclm sample) in GPT-2 tokens: a val shard and 2 train shards with their manifest."""
    return built_once(tmp_path_factory, "tiny-shards", make_shards)


@pytest.fixture(scope="session")
def tiny_run(tiny_shards, tmp_path_factory) -> Path:
    """`python -m model.train` with TINY and CADENCE for 4 steps on tiny_shards: a run folder holding
    checkpoints/step_000002 and step_000004 (each with DeepSpeed's model and optimizer states, the consolidated
    weights and trainer_state.json), metrics.jsonl with validations at steps 2 and 4, and config.yaml."""
    def build(folder: Path) -> Path:
        run_dir = folder / "run"
        result = run_train(1, [*TINY, *CADENCE, "--data", str(tiny_shards), "--run-dir", str(run_dir),
                               "--max-steps", str(TINY_RUN_STEPS)])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
        return run_dir

    return built_once(tmp_path_factory, "tiny-run", build)


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory) -> Path:
    """`python -m pipeline.prepare --corpus sample --limit 600` (dedup on, as by default): GPT-2 shards of 200,000
    tokens and a 20,000-token validation split, enough for a 2-node tiny run."""
    def build(folder: Path) -> Path:
        out = folder / "sample"
        result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--corpus", "sample", "--limit", "600",
                                 "--output", str(out), "--shard-tokens", "200000", "--val-tokens", "20000"],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert read_manifest(out)["corpus"] == "sample"
        return out

    return built_once(tmp_path_factory, "sample-shards", build)
