"""model.convert writes only into a new or empty folder, or one an earlier convert of the same direction wrote
(gptstack/output_folder.py): a training checkpoint's model/ and a user's folder are refused in one line with every
file byte-identical; --force writes anyway, says what it replaces and keeps the other files."""
import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gptstack.output_folder import MARKER
from model.checkpoint.weights import load_model, save_weights
from tests.support.faults import assert_one_line_error, python_module, tree_digest


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random GPT2LMHeadModel.save_pretrained folder (no download)."""
    folder = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=300)).save_pretrained(folder)
    return folder


def convert(*args):
    return python_module("model.convert", *args)


def test_import_refuses_a_training_checkpoints_weights_and_force_replaces_them(hf_dir, tmp_path):
    imported = convert("--from-hf", hf_dir, "--out", tmp_path / "weights")
    assert imported.returncode == 0, imported.stderr[-3000:]
    model = tmp_path / "run" / "checkpoints" / "step_000010" / "model"
    save_weights(load_model(tmp_path / "weights"), model)  # what the trainer writes into a checkpoint
    (model.parent / "trainer_state.json").write_text(json.dumps({"step": 10}))
    before = tree_digest(tmp_path / "run")

    line = assert_one_line_error(convert("--from-hf", hf_dir, "--out", model), f"--out {model}", "--force")
    assert "model.convert --from-hf did not write it" in line
    assert tree_digest(tmp_path / "run") == before
    assert_one_line_error(convert("--from-hf", hf_dir, "--checkpoint", model.parent), f"--checkpoint {model.parent}")
    assert tree_digest(tmp_path / "run") == before

    forced = convert("--from-hf", hf_dir, "--out", model, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert f"--force: model.convert --from-hf writes into {model}, replacing config.json, model.safetensors" \
        in forced.stderr.splitlines()
    assert tree_digest(tmp_path / "run")["checkpoints/step_000010/trainer_state.json"] == \
        before["checkpoints/step_000010/trainer_state.json"]

    # its own output, with its marker or as an older version left it (no marker): imported into again
    for drop_marker in (False, True):
        if drop_marker:
            (tmp_path / "weights" / MARKER).unlink()
        again = convert("--from-hf", hf_dir, "--out", tmp_path / "weights")
        assert again.returncode == 0 and "--force" not in again.stderr, again.stderr[-3000:]
    assert json.loads((tmp_path / "weights" / MARKER).read_text())["command"] == "model.convert --from-hf"


def test_export_writes_again_into_its_own_export_and_force_keeps_the_users_other_files(hf_dir, tmp_path):
    weights = tmp_path / "weights"
    assert convert("--from-hf", hf_dir, "--out", weights).returncode == 0
    export = tmp_path / "hf"
    for _ in range(2):  # the second time into its own export: no --force needed
        done = convert("--checkpoint", weights, "--to-hf", export)
        assert done.returncode == 0 and "--force" not in done.stderr, done.stderr[-3000:]

    # an import's folder is not an export's, nor the other way round
    assert_one_line_error(convert("--checkpoint", weights, "--to-hf", weights),
                          "was written by model.convert --from-hf")

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("# my model\n")
    (mine / "train.py").write_text("print('mine')\n")
    before = tree_digest(mine)
    line = assert_one_line_error(convert("--checkpoint", weights, "--to-hf", mine), f"--to-hf {mine}", "--force")
    assert "replacing README.md" in line and tree_digest(mine) == before
    forced = convert("--checkpoint", weights, "--to-hf", mine, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert f"--force: model.convert --to-hf writes into {mine}, replacing README.md" in forced.stderr.splitlines()
    assert tree_digest(mine)["train.py"] == before["train.py"] and (mine / "model.safetensors").is_file()
