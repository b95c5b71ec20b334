"""The exported model card (model/model_card.py) escapes every value it quotes from run files in one helper (md),
reads those files bounded, and takes trainer_state.json only through its validating loader."""
import json
import re

import pytest
import torch
import yaml

from model.checkpoint.layout import CheckpointError
from model.checkpoint.weights import save_weights
from model.gpt import GPT, GPTConfig
from model.model_card import MAX_VALUE_CHARS, md, model_card, training_facts

EVIL = "x\n\n## Pwned\n<img src=x onerror=alert(1)>\n| a | b |\n```\n[link](javascript:alert(1))"


def test_md_keeps_any_value_on_one_inert_line():
    text = md(EVIL)
    assert "\n" not in text and "<" not in text and ">" not in text
    assert "\\#\\# Pwned" in text and "\\| a \\| b \\|" in text and "\\[link\\]" in text
    assert md("a & b") == "a &amp; b"
    code = md(EVIL, code=True)
    assert "\n" not in code and code.startswith("````") and code.endswith("````")  # longer than the ``` inside
    assert re.findall(r"(?<!\\)\|", code) == []  # every pipe escaped: it ends a table cell even in a code span
    assert md("`x`", code=True) == "`` `x` ``"


@pytest.mark.parametrize("value", [None, [1, 2], {"a": 1}, object()])
def test_md_shows_only_scalars(value):
    assert md(value) == "unknown" and md(value, code=True) == "unknown"


def test_md_cuts_long_values():
    assert len(md("a" * 10**7)) == MAX_VALUE_CHARS
    assert md(7) == "7" and md(0.5) == "0.5"


@pytest.fixture
def run(tmp_path):
    """A run folder as the trainer leaves it, and its shard folder's manifest (only what the card reads)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=300, n_layer=1, n_head=2, n_embd=16))
    step = tmp_path / "run" / "checkpoints" / "step_000010"
    save_weights(model, step / "model")
    (step / "trainer_state.json").write_text(json.dumps({"step": 10, "tokens_per_step": 512, "world_size": 1}))
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"command": "python -m pipeline.prepare",
                                                    "totals": {"train_tokens": 1000, "documents": 10}}))
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump({
        "data": {"dir": str(data)}, "optim": {"lr": 0.001, "schedule": "cosine", "weight_decay": 0.1},
        "train": {"precision": "fp32", "zero_stage": 1}}))
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({"step": 10, "val_loss": 4.5, "val_bpb": 1.25}) + "\n")
    return model, step / "model", data


def card_of(run, tokenizer="gpt2", name="export") -> str:
    model, weights, _ = run
    return model_card(model, tokenizer, 299, training_facts(weights), name)


def headings(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.startswith("#")]


def test_a_planted_command_tokenizer_or_folder_name_adds_no_section_and_no_html(run):
    _, _, data = run
    clean = headings(card_of(run))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["command"] = EVIL
    manifest["cleaning"] = {"recipe": EVIL}
    (data / "manifest.json").write_text(json.dumps(manifest))
    card = card_of(run, tokenizer=EVIL, name=EVIL)
    assert headings(card) == [clean[0], "# x \\#\\# Pwned &lt;img src=x onerror=alert(1)&gt; \\| a \\| b \\| "
                                         "\\`\\`\\` \\[link\\](javascript:alert(1))"] + clean[2:]
    assert "<img" not in card.split("```python")[0].replace("`x ## Pwned <img", "")  # HTML only inside code spans
    data_row = next(line for line in card.splitlines() if line.startswith("| data |"))
    assert len(re.findall(r"(?<!\\)\|", data_row)) == 3  # still two cells: every inner pipe escaped


def test_malformed_run_files_give_unknown_not_a_traceback(run):
    model, weights, data = run
    run_dir = weights.parent.parent.parent
    (run_dir / "config.yaml").write_text("optim: [1, 2]\ntrain: 7\ndata: {dir: [1]}\n")
    (run_dir / "metrics.jsonl").write_text('{"step": "x", "val_loss": "y"}\n[1]\n{"step": 1, "val_loss": "zz"}\n'
                                           + "[" * 100_000 + "\n")
    card = card_of(run)
    assert "| validation loss (nats per token, held-out shard) | unknown |" in card
    assert "| data | unknown |" in card and "AdamW, lr unknown (unknown schedule)" in card
    (run_dir / "config.yaml").write_text("[" * 50_000 + "]" * 50_000)  # too deep for the YAML parser
    assert "| data | unknown |" in card_of(run)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"dir": str(data)}}))
    (data / "manifest.json").write_text(json.dumps({"command": ["not", "text"], "totals": {"documents": "many"}}))
    card = card_of(run)
    assert "unknown training tokens in unknown documents, made by unknown" in card


@pytest.mark.parametrize("state, fragment", [
    ({"step": 10**9, "tokens_per_step": "a" * 1000}, "tokens_per_step must be an integer"),
    ({"step": 10**40, "tokens_per_step": 10**40}, "step must be 0 to"),
    ({"step": [1]}, "step must be an integer"),
])
def test_absurd_trainer_state_is_one_line_before_any_string_is_built(run, state, fragment):
    _, weights, _ = run
    (weights.parent / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=fragment):
        training_facts(weights)
