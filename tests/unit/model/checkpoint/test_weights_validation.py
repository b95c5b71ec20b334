"""A weights folder is validated on load (model/checkpoint/weights.py): config.json's types and sizes, and the
safetensors header's dtypes and shapes compared with it, before the model is built or any tensor is read."""
import json
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint.layout import CheckpointError
from model.checkpoint.weights import load_model, save_weights
from model.gpt import GPT, GPTConfig


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_weights(GPT(GPTConfig(block_size=16, vocab_size=300, n_layer=2, n_head=2, n_embd=16)),
                        tmp_path / "weights")


def set_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def rewrite_tensors(folder, change):
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def refused(folder, *fragments) -> str:
    with pytest.raises(CheckpointError) as error:
        load_model(folder)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("changes, fragment", [
    ({"n_layer": "2"}, "n_layer='2' must be an integer"),
    ({"n_layer": 2.5}, "n_layer=2.5 must be an integer"),
    ({"n_layer": True}, "n_layer=True must be an integer"),
    ({"n_embd": 2**40, "n_head": 1}, "n_embd=1099511627776 must be an integer from 1 to"),
    ({"vocab_size": 10**30}, "vocab_size="),
    ({"bias": "no"}, "bias='no' must be true or false"),  # was taken as True: silently a model with biases
    ({"dropout": float("nan")}, "dropout=nan must be in [0, 1)"),
    ({"surprise": 1}, "unknown field(s) surprise"),
])
def test_config_json_of_the_wrong_type_or_size_is_one_line(weights, changes, fragment):
    set_config(weights, **changes)
    refused(weights, "config.json", fragment)


def test_absurd_layer_count_is_refused_from_the_header_at_once(weights):
    set_config(weights, n_layer=10_000)  # in range, but not what the file holds: nothing of that size is built
    start = time.perf_counter()
    refused(weights, "model.safetensors holds 2 layers", "n_layer=10000")
    assert time.perf_counter() - start < 5
    set_config(weights, n_layer=2, n_embd=2**20, n_head=1)  # width: compared with the embedding before any shape
    refused(weights, "tensor transformer.wte.weight has shape (320, 16)", "(320, 1048576)")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_integer_tensors_are_not_weights(weights, dtype):
    rewrite_tensors(weights, lambda t: t.update({"transformer.ln_f.weight": t["transformer.ln_f.weight"].to(dtype)}))
    refused(weights, "tensor transformer.ln_f.weight is", "; model weights are F16, BF16, F32, F64")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(weights, value):
    def plant(tensors):
        tensors["transformer.h.1.mlp.c_fc.weight"][3, 5] = value
    rewrite_tensors(weights, plant)
    refused(weights, "tensor transformer.h.1.mlp.c_fc.weight holds 1 NaN or infinite value(s)")


def test_half_precision_weights_load_as_fp32(weights):
    reference = load_model(weights)
    rewrite_tensors(weights, lambda t: t.update({k: v.half() for k, v in t.items()}))
    loaded = load_model(weights)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(loaded.transformer.wpe.weight, reference.transformer.wpe.weight.half().float())


def test_config_json_that_is_no_object_or_too_deep_is_one_line(weights):
    (weights / "config.json").write_text("[1, 2]")
    refused(weights, "config.json", "not an object")
    (weights / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(weights, "config.json", "nested too deeply")


def test_a_header_that_lies_about_a_shape_is_refused_by_safetensors(weights):
    raw = (weights / "model.safetensors").read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    header["transformer.wpe.weight"]["shape"] = [10**12, 16]
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (weights / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])
    refused(weights, "model.safetensors cannot be read")


def test_a_planted_tensor_name_is_named_short(weights):
    name = "transformer.h." + "9" * 5000 + ".attn.bias"  # more digits than Python turns into an int
    rewrite_tensors(weights, lambda t: t.update({name: torch.zeros(1)}))
    message = refused(weights, "does not match its config.json: unexpected 'transformer.h.999")
    assert len(message) < 400
