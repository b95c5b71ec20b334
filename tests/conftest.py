"""Shared pytest fixtures: where the real test data lives, a CPU-only DeepSpeed, and the two tiers.

tests/unit/ is the fast tier (in-process, seconds each: `bash scripts/test.sh --fast`); tests/integration/ runs real
launchers, clusters and prepares. Each test is marked after its folder, `fast` or `slow`, so `-m fast` selects the same.

scripts/test.sh runs the tests on pytest-xdist worker processes with the scheduler below: each test file goes whole
to one worker, so a file's module fixtures are built once; the files of tests/integration/cluster/, which start Slurm,
munge and Ray daemons, go together to one worker, since those daemons are one per machine (munge's pid file, the
`slurm` fixture). (xdist's own `--dist loadgroup` marks are ignored with pytest 9: it never groups.)
"""
import os
from pathlib import Path

import pytest

from tests.support import SHARED_DATA

# DeepSpeed picks its accelerator at import time; on a machine without a GPU it must be told.
os.environ.setdefault("DS_ACCELERATOR", "cpu")

TIERS = {"unit": "fast", "integration": "slow"}
TESTS = Path(__file__).parent


DAEMON_TESTS = "tests/integration/cluster/"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(TESTS) and item.path.relative_to(TESTS).parts[0] in TIERS:
            item.add_marker(TIERS[item.path.relative_to(TESTS).parts[0]])


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's file scheduling, with every daemon test file in one unit (see the module's docstring)."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return DAEMON_TESTS if path.startswith(DAEMON_TESTS) else path

    return FileScheduling(config, log)


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
