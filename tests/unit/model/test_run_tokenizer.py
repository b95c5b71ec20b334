"""A checkpoint's copy of its tokenizer (model/tokenizer/) is checked against the record in its trainer_state.json
wherever sample and convert take it (model.run_tokenizer.weights_tokenizer; issue 22: a swapped copy sampled and
exported with exit 0)."""
import json
import shutil
from pathlib import Path

import pytest

from gptstack.errors import GPTStackError
from model.checkpoint.layout import STATE_FILE
from model.run_tokenizer import weights_tokenizer
from pipeline.tokenizer import COPY_DIR, get_tokenizer
from tests.support.tokenizers import train_small


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {"trained": train_small(root / "trained", 300), "other": train_small(root / "other", 280)}


def checkpoint(tmp_path: Path, record: dict) -> Path:
    """step_000001/ with trainer_state.json recording `record`; returns its model/ folder."""
    step = tmp_path / "step_000001"
    (step / "model").mkdir(parents=True)
    (step / STATE_FILE).write_text(json.dumps({"step": 1, "tokenizer": record}))
    return step / "model"


def test_the_recorded_copy_is_the_one_used(tokenizers, tmp_path):
    tokenizer = get_tokenizer(str(tokenizers["trained"]))
    weights = checkpoint(tmp_path, tokenizer.record())
    tokenizer.copy_into(weights)
    assert weights_tokenizer(weights).sha256 == tokenizer.sha256


def test_a_swapped_copy_is_refused(tokenizers, tmp_path):
    weights = checkpoint(tmp_path, get_tokenizer(str(tokenizers["trained"])).record())
    shutil.copytree(tokenizers["other"], weights / COPY_DIR)
    with pytest.raises(GPTStackError, match="sha256"):
        weights_tokenizer(weights)


def test_a_copy_planted_beside_a_tiktoken_record_is_refused(tokenizers, tmp_path):
    weights = checkpoint(tmp_path, get_tokenizer("gpt2").record())
    shutil.copytree(tokenizers["other"], weights / COPY_DIR)
    with pytest.raises(GPTStackError, match="records the tiktoken tokenizer 'gpt2'"):
        weights_tokenizer(weights)


def test_a_removed_copy_is_refused_and_a_tiktoken_record_needs_none(tokenizers, tmp_path):
    weights = checkpoint(tmp_path / "a", get_tokenizer(str(tokenizers["trained"])).record())
    with pytest.raises(GPTStackError, match="no tokenizer/ copy"):
        weights_tokenizer(weights)
    assert weights_tokenizer(checkpoint(tmp_path / "b", get_tokenizer("gpt2").record())).name == "gpt2"
