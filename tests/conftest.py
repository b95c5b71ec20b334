"""Shared pytest fixtures: where the real test data lives and a CPU-only DeepSpeed."""
import os
from pathlib import Path

import pytest

from tests.support import SHARED_DATA

# DeepSpeed picks its accelerator at import time; on a machine without a GPU it must be told.
os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real web data beside the repository (../shared/data); tests may read it, the product never does."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read real data from ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real two-node Slurm on loopback (tests/support/slurm_cluster.py), shared by the tests that submit jobs."""
    from tests.support.slurm_cluster import LocalSlurm

    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), nodes=2)
    cluster.start()
    yield cluster
    cluster.stop()
