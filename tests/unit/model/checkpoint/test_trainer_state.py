"""trainer_state.json is read by one validating loader (layout.read_trainer_state): every field resume, the tokenizer
lookup and the model card use is typed and ranged, and a bad one is one CheckpointError naming the file and field."""
import copy
import json

import pytest

from model.checkpoint.layout import RESUME_FIELDS, CheckpointError, read_trainer_state
from model.data.mixture import MixtureSampler, MixtureSource

# As model/train.py and CheckpointManager.save write it (a real run's file, tests/support/train.py sizes).
STATE = {
    "loader": {"samples_consumed": 32, "seed": 1337, "shuffle": True, "seq_len": 64, "windows_per_epoch": 151,
               "split": "train"},
    "data_fingerprint": "e295e09378892404", "zero_stage": 1, "precision": "fp32", "tokens_per_step": 512,
    "tokenizer": {"name": "gpt2", "vocab_size": 50257, "eot_token": 50256, "sha256": None},
    "step": 2, "world_size": 1,
    "model": {"block_size": 64, "vocab_size": 50257, "n_layer": 2, "n_head": 2, "n_embd": 64, "dropout": 0.0,
              "bias": True, "vocab_multiple": 64, "activation_checkpointing": False},
    "saved": "2026-12-07T05:58:16+0000",
}


def mixture_state() -> dict:
    state = copy.deepcopy(STATE)
    sampler = MixtureSampler([MixtureSource("zh", 100, 0.6), MixtureSource("en", 50, 0.4)], seed=7)
    state["loader"]["mixture"] = json.loads(json.dumps(sampler.state_dict(40)))  # through JSON, as saved
    return state


def write(folder, state) -> None:
    (folder / "trainer_state.json").write_text(json.dumps(state))


def test_the_trainers_own_states_are_read_back_unchanged(tmp_path):
    for state in (STATE, mixture_state()):
        write(tmp_path, state)
        assert read_trainer_state(tmp_path, RESUME_FIELDS) == state
    write(tmp_path, {"step": 10})  # a model card's minimum (tests/integration/model/test_hf_export.py)
    assert read_trainer_state(tmp_path) == {"step": 10}


def change(path: str, value):
    """A copy of the mixture state with the field at dotted `path` set to `value` (or deleted: value is ...)."""
    state = mixture_state()
    *parents, last = path.split(".")
    target = state
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return state


@pytest.mark.parametrize("path, value, fragment", [
    ("step", -1, "step must be 0 to"),
    ("step", 10**40, "step must be 0 to 1,000,000,000,000"),
    ("step", "2", "step must be an integer"),
    ("step", True, "step must be an integer"),
    ("tokens_per_step", "a" * 1000, "tokens_per_step must be an integer"),  # once str * int: a terabyte string
    ("world_size", 0, "world_size must be 1 to"),
    ("zero_stage", 7, "zero_stage must be 0 to 3"),
    ("precision", "fp8", "precision must be bf16, fp16 or fp32"),
    ("loader", [], "loader must be an object"),
    ("loader.samples_consumed", -5, "loader.samples_consumed must be 0 to"),
    ("loader.samples_consumed", 2.5, "loader.samples_consumed must be an integer"),
    ("loader.seed", 2**70, "loader.seed must be 0 to"),
    ("loader.seq_len", "64", "loader.seq_len must be an integer"),
    ("loader.shuffle", "yes", "loader.shuffle must be true or false"),
    ("loader.mixture.sources", {}, "mixture.sources is empty"),
    ("loader.mixture.sources.zh.weight", float("nan"), "sources.'zh'.weight must be a number"),
    ("loader.mixture.sources.zh.windows", 0, "sources.'zh'.windows must be 1 to"),
    ("loader.mixture.phase_start", None, "mixture.phase_start must be an integer"),
    ("model.n_layer", 10**9, "model.n_layer must be 1 to"),
    ("model.bias", "no", "model.bias must be true or false"),
    ("tokenizer.name", 5, "tokenizer.name must be a string"),
    ("tokenizer.vocab_size", -1, "tokenizer.vocab_size must be 1 to"),
    ("loader", ..., "loader missing"),
    ("world_size", ..., "world_size missing"),
])
def test_a_bad_field_is_one_line_naming_it(tmp_path, path, value, fragment):
    write(tmp_path, change(path, value))
    with pytest.raises(CheckpointError) as error:
        read_trainer_state(tmp_path, RESUME_FIELDS)
    message = str(error.value)
    assert "\n" not in message and "trainer_state.json" in message
    assert fragment in message, message
    assert len(message) < 400  # the offending value is shown cut, never whole


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "not an object"),
    ("{" * 50 + "}" * 50, "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"step": 1' + "0" * 5000 + "}", "not valid JSON"),  # more digits than Python converts
])
def test_a_file_that_is_no_state_at_all_is_one_line(tmp_path, content, fragment):
    (tmp_path / "trainer_state.json").write_text(content)
    with pytest.raises(CheckpointError, match=fragment):
        read_trainer_state(tmp_path)
