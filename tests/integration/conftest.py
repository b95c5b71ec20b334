"""What several integration files read, built once per session: a tiny GPT-2 shard folder, a short tiny run trained
on it, and a prepared folder of the sample corpus. A test that changes one copies it into its tmp_path first
(shutil.copytree); the fixtures themselves are never written to after they are built."""
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shards import read_manifest
from tests.support import REPO_ROOT
from tests.support.train import CADENCE, TINY, TINY_RUN_STEPS, make_shards, run_train


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """Real web text (the dclm sample) in GPT-2 tokens: a val shard and 2 train shards with their manifest."""
    return make_shards(tmp_path_factory.mktemp("tiny-shards"))


@pytest.fixture(scope="session")
def tiny_run(tiny_shards, tmp_path_factory) -> Path:
    """`python -m model.train` with TINY and CADENCE for 4 steps on tiny_shards: a run folder holding
    checkpoints/step_000002 and step_000004 (each with DeepSpeed's model and optimizer states, the consolidated
    weights and trainer_state.json), metrics.jsonl with validations at steps 2 and 4, and config.yaml."""
    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    result = run_train(1, [*TINY, *CADENCE, "--data", str(tiny_shards), "--run-dir", str(run_dir),
                           "--max-steps", str(TINY_RUN_STEPS)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
    return run_dir


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory) -> Path:
    """`python -m pipeline.prepare --corpus sample --limit 600` (dedup on, as by default): GPT-2 shards of 200,000
    tokens and a 20,000-token validation split, enough for a 2-node tiny run."""
    out = tmp_path_factory.mktemp("sample-shards") / "sample"
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--corpus", "sample", "--limit", "600",
                             "--output", str(out), "--shard-tokens", "200000", "--val-tokens", "20000"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_manifest(out)["corpus"] == "sample"
    return out
