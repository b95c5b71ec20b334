"""Weights on disk: save_weights / load_model / resolve_checkpoint and their one-line errors."""
import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from model.gpt import GPT, GPTConfig
from model.checkpoint.layout import CheckpointError
from model.checkpoint.weights import load_model, resolve_checkpoint, save_weights


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=16, vocab_size=300, n_layer=2, n_head=2, n_embd=16))


def test_save_and_load_round_trip_keeps_logits_and_tying(tmp_path):
    model = tiny_model().eval()
    save_weights(model, tmp_path / "weights")
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["config.json", "model.safetensors"]
    stored = load_file(tmp_path / "weights" / "model.safetensors")
    assert "lm_head.weight" not in stored and all(t.dtype == torch.float32 for t in stored.values())
    loaded = load_model(tmp_path / "weights")
    assert loaded.config == model.config and not loaded.training
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    idx = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[0], model(idx)[0], atol=0, rtol=0)
    # the safetensors file itself is also accepted
    assert resolve_checkpoint(tmp_path / "weights" / "model.safetensors") == tmp_path / "weights"


def test_run_folder_resolves_to_newest_complete_step(tmp_path):
    run = tmp_path / "run"
    save_weights(tiny_model(1), run / "checkpoints" / "step_000100" / "model")
    save_weights(tiny_model(2), run / "checkpoints" / "step_000900" / "model")
    save_weights(tiny_model(3), run / "checkpoints" / "step_001000.tmp" / "model")  # not committed yet
    (run / "checkpoints" / "step_001100").mkdir()  # no model/ inside: incomplete
    expected = run / "checkpoints" / "step_000900" / "model"
    assert resolve_checkpoint(run) == expected
    assert resolve_checkpoint(run / "checkpoints") == expected
    assert resolve_checkpoint(run / "checkpoints" / "step_000100") == run / "checkpoints" / "step_000100" / "model"
    assert torch.equal(load_model(run).transformer.wpe.weight, tiny_model(2).transformer.wpe.weight)


@pytest.mark.parametrize("make_bad, message", [
    (lambda d: d / "absent", "does not exist"),
    (lambda d: d, "has no model.safetensors"),
    (lambda d: (d / "checkpoints" / "step_000005.tmp").mkdir(parents=True) or d / "checkpoints" / "step_000005.tmp",
     "unfinished"),
    (lambda d: (d / "checkpoints" / "step_000005").mkdir(parents=True) or d, "no complete step_"),
])
def test_bad_checkpoint_paths_raise_one_line_errors(tmp_path, make_bad, message):
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(make_bad(tmp_path))
    assert "\n" not in str(error.value)


def test_shape_mismatch_names_the_tensor(tmp_path):
    save_weights(tiny_model(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_embd"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"tensor transformer\.\S+ has shape \(\d+, 16\)"):
        load_model(tmp_path)
    config["n_embd"], config["n_layer"] = 16, 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"holds 2 layers but its config.json says n_layer=3"):
        load_model(tmp_path)


def test_corrupt_files_are_reported_not_crashed_on(tmp_path):
    save_weights(tiny_model(), tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: model config is not valid JSON"):
        load_model(tmp_path)
    save_weights(tiny_model(), tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated copy
    with pytest.raises(CheckpointError, match="model.safetensors cannot be read"):
        load_model(tmp_path)


def test_overwriting_leaves_no_temp_files(tmp_path):
    save_weights(tiny_model(1), tmp_path)
    save_weights(tiny_model(2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert torch.equal(load_model(tmp_path).transformer.wpe.weight, tiny_model(2).transformer.wpe.weight)


def test_weights_files_get_the_usual_permissions(tmp_path):
    """safetensors creates its files 0600; a weights folder is shared like any other output (0666 - umask)."""
    previous = os.umask(0o022)
    try:
        save_weights(tiny_model(), tmp_path)
    finally:
        os.umask(previous)
    assert {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("model.safetensors", "config.json")} \
        == {"model.safetensors": 0o644, "config.json": 0o644}
