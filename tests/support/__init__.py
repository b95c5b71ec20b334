"""Helpers shared by the test suite, imported as `from tests.support.train import make_shards` and the like.

The repository root is on pytest's path (pyproject.toml: [tool.pytest.ini_options] pythonpath), so `tests.support`
imports the same way from tests/unit/ and tests/integration/ at any depth.
"""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # real web data beside the repository; the product never reads it
