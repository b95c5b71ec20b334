"""`python -m model.convert` as a user runs it: a Hugging Face folder in and back out bit for bit (a trainer run folder
accepted as --checkpoint), and a missing checkpoint, a shape mismatch or a missing --out as one error line."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint.weights import load_model, save_weights
from tests.support.hf import random_hf_model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    random_hf_model().save_pretrained(folder)
    return folder


def run_convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.convert", *args], capture_output=True, text=True, timeout=120)


def test_convert_cli_round_trip_and_errors(hf_dir, tmp_path):
    imported = run_convert("--from-hf", str(hf_dir), "--out", str(tmp_path / "ckpt"))
    assert imported.returncode == 0, imported.stderr
    run_dir = tmp_path / "run"  # a trainer run folder is accepted as --checkpoint too
    save_weights(load_model(tmp_path / "ckpt"), run_dir / "checkpoints" / "step_000007" / "model")
    exported = run_convert("--checkpoint", str(run_dir), "--to-hf", str(tmp_path / "hf_again"))
    assert exported.returncode == 0, exported.stderr
    original = load_file(hf_dir / "model.safetensors")
    again = load_file(tmp_path / "hf_again" / "model.safetensors")
    assert original.keys() == again.keys()
    for name in original:
        assert torch.equal(original[name], again[name]), name

    missing = run_convert("--checkpoint", str(tmp_path / "nowhere"), "--to-hf", str(tmp_path / "x"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: checkpoint {tmp_path / 'nowhere'} does not exist"
    config_path = tmp_path / "ckpt" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "n_head": 2, "n_embd": 32}))
    mismatch = run_convert("--checkpoint", str(tmp_path / "ckpt"), "--to-hf", str(tmp_path / "y"))
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert mismatch.stderr.count("\n") == 1 and "has shape" in mismatch.stderr
    assert not (tmp_path / "y").exists()
    usage = run_convert("--from-hf", str(hf_dir))
    assert usage.returncode == 2 and "--out" in usage.stderr
