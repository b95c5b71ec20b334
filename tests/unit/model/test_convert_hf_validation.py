"""A Hugging Face folder for `convert --from-hf` is validated before any tensor is read (model/convert.py): its
config.json and model.safetensors.index.json through the typed reader, the index's files confined to the folder,
tensor dtypes from the headers."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint.layout import CheckpointError
from model.convert import gpt_from_hf
from tests.support.hf import random_hf_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "model"
    random_hf_model().save_pretrained(folder)
    return folder


@pytest.fixture
def hf(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "hf")


def write_index(folder, index) -> None:
    (folder / "model.safetensors.index.json").write_text(index if isinstance(index, str) else json.dumps(index))


def refused(folder, *fragments) -> str:
    with pytest.raises(CheckpointError) as error:
        gpt_from_hf(folder)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("index, fragment", [
    ([1, 2], "not an object"),
    ({"metadata": {}}, "weight_map is missing"),
    ({"weight_map": []}, "weight_map must be an object"),
    ({"weight_map": {}}, "weight_map is empty"),
    ({"weight_map": {"wte": ["x"]}}, "weight_map['wte'] must be a string"),
    ({"weight_map": {"wte": 5}}, "weight_map['wte'] must be a string"),
    ({"weight_map": {"wte": "../other/model.safetensors"}}, "not a .safetensors file name of this folder"),
    ({"weight_map": {"wte": "/etc/model.safetensors"}}, "not a .safetensors file name of this folder"),
    ({"weight_map": {"wte": "."}}, "not a .safetensors file name of this folder"),
    ({"weight_map": {"wte": "pytorch_model.bin"}}, "not a .safetensors file name of this folder"),
    ("[" * 100_000, "nested too deeply"),
    ("{not json", "not valid JSON"),
])
def test_a_malformed_index_is_one_line(hf, index, fragment):
    write_index(hf, index)
    refused(hf, "model.safetensors.index.json", fragment)


def test_an_index_naming_a_file_outside_the_folder_reads_nothing_there(hf, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(hf / "model.safetensors", outside / "model.safetensors")  # a valid file: once it was imported
    write_index(hf, {"weight_map": {"transformer.wte.weight": "../elsewhere/model.safetensors"}})
    refused(hf, "not a .safetensors file name of this folder")


def test_a_sharded_folder_with_a_tensor_in_two_files_is_refused(hf):
    tensors = load_file(hf / "model.safetensors")
    save_file({"transformer.wpe.weight": tensors["transformer.wpe.weight"]}, hf / "extra.safetensors",
              metadata={"format": "pt"})
    write_index(hf, {"weight_map": {"transformer.wpe.weight": "extra.safetensors",
                                    "transformer.wte.weight": "model.safetensors"}})
    refused(hf, "tensor transformer.wpe.weight is also in")


def test_a_valid_sharded_folder_still_imports(hf):
    tensors = load_file(hf / "model.safetensors")
    names = sorted(tensors)
    save_file({n: tensors[n] for n in names[:5]}, hf / "model-00001-of-00002.safetensors", metadata={"format": "pt"})
    save_file({n: tensors[n] for n in names[5:]}, hf / "model-00002-of-00002.safetensors", metadata={"format": "pt"})
    (hf / "model.safetensors").unlink()
    write_index(hf, {"weight_map": {n: f"model-0000{1 if i < 5 else 2}-of-00002.safetensors"
                                    for i, n in enumerate(names)}})
    assert gpt_from_hf(hf).config.n_layer == 2


@pytest.mark.parametrize("changes, fragment", [
    ({"n_embd": "64"}, "n_embd must be an integer"),
    ({"n_layer": 10**9}, "n_layer must be 1 to 10,000"),
    ({"n_head": 3}, "not divisible by n_head=3"),
    ({"resid_pdrop": "x"}, "resid_pdrop must be a number"),
    ({"n_inner": [1]}, "n_inner must be an integer or null"),
    ({"n_positions": None}, "n_positions must be an integer"),
])
def test_a_malformed_config_is_one_line(hf, changes, fragment):
    config = json.loads((hf / "config.json").read_text())
    config.update(changes)
    (hf / "config.json").write_text(json.dumps(config))
    refused(hf, "config.json", fragment)


def test_integer_or_non_finite_tensors_are_refused_naming_them(hf):
    tensors = load_file(hf / "model.safetensors")
    tensors["transformer.h.0.attn.c_attn.weight"] = (tensors["transformer.h.0.attn.c_attn.weight"] * 100).long()
    save_file(tensors, hf / "model.safetensors", metadata={"format": "pt"})
    refused(hf, "tensor transformer.h.0.attn.c_attn.weight is I64; model weights are F16")  # .float() took it before
    tensors["transformer.h.0.attn.c_attn.weight"] = torch.full((64, 192), float("nan"))
    save_file(tensors, hf / "model.safetensors", metadata={"format": "pt"})
    refused(hf, "tensor transformer.h.0.attn.c_attn.weight holds 12,288 NaN or infinite value(s)")
