"""The valid starting material every fuzzer corrupts copies of, built once per session by the project's writers."""
from types import SimpleNamespace

import pytest

from tests.support.fuzz_model import build_checkpoint
from tests.support.fuzz_pipeline import build_shard_folder, build_tokenizer


@pytest.fixture(scope="session")
def material(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("fuzz-material")
    tok = build_tokenizer(root / "tok")
    shards = build_shard_folder(root / "shards", tok)
    run = build_checkpoint(root / "run", tok, shards)
    return SimpleNamespace(root=root, tok=tok, shards=shards, run=run)

