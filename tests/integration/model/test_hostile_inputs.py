"""Issue 22's model side, through the real commands on a real tiny run: hostile weights folders, trainer states,
run files, Hugging Face folders, config values and sampler settings are one `error:` line with exit 2 and leave what
was written intact; a planted command line stays inert text in the model card; a disk that fills up between
checkpoints stops the run at the next save with one line, and the resume completes with every step logged once."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.faults import (assert_one_line_error, python_module, reseal_checkpoint, run_on_small_disk,
                                  tree_digest)
from tests.support.train import TINY, make_shards, run_train, train_env

EVIL = "x\n\n## Pwned\n<img src=x onerror=alert(1)>\n| a | b |"


def train_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--set", "checkpoint.every=2", "--set", "eval.every=0", "--data", str(data), "--run-dir",
            str(run_dir), *extra]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("hostile-shards"), train_shards=1)


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("hostile-run") / "run"
    done = run_train(1, train_args(shards, run_dir, "--max-steps", "2"))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def step_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "step_000002"


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def sample(checkpoint: Path, *extra: str):
    return python_module("model.sample", "--checkpoint", checkpoint, "--max-new-tokens", "4", "--device", "cpu",
                         *extra, timeout=120)


# ---- weights folders -----------------------------------------------------------------------------------------------
def absurd_layers(weights: Path) -> None:
    edit_json(weights / "config.json", lambda c: c.update(n_layer=10**9))


def layers_in_range(weights: Path) -> None:
    edit_json(weights / "config.json", lambda c: c.update(n_layer=9_999))


def nan_weight(weights: Path) -> None:
    tensors = load_file(weights / "model.safetensors")
    tensors["transformer.h.1.attn.c_proj.weight"][0, 0] = float("nan")
    save_file(tensors, weights / "model.safetensors", metadata={"format": "pt"})


def integer_weights(weights: Path) -> None:
    tensors = {k: v.to(torch.int32) for k, v in load_file(weights / "model.safetensors").items()}
    save_file(tensors, weights / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("damage, fragments", [
    (absurd_layers, ["config.json", "n_layer=1000000000"]),
    (layers_in_range, ["holds 2 layers", "n_layer=9999"]),
    (nan_weight, ["transformer.h.1.attn.c_proj.weight", "NaN or infinite"]),
    (integer_weights, ["is I32; model weights are F16, BF16, F32, F64"]),
])
def test_sample_and_export_refuse_a_hostile_weights_folder_in_one_line(run, tmp_path, damage, fragments):
    damage(step_dir(run) / "model")
    start = time.perf_counter()
    assert_one_line_error(sample(run), *fragments)
    assert time.perf_counter() - start < 60  # refused from the header, not after building 10^9 layers
    assert_one_line_error(python_module("model.convert", "--checkpoint", run, "--to-hf", tmp_path / "hf"), *fragments)
    assert not (tmp_path / "hf" / "model.safetensors").exists()


def test_sample_numbers_are_checked_and_a_denormal_temperature_is_greedy(trained):
    assert_one_line_error(sample(trained, "--temperature", "nan"), "--temperature")
    assert_one_line_error(sample(trained, "--seed", str(2**70)), "--seed")
    greedy, tiny = sample(trained, "--temperature", "0"), sample(trained, "--temperature", "1e-45")
    assert greedy.returncode == tiny.returncode == 0, tiny.stderr[-2000:]
    assert tiny.stdout == greedy.stdout


# ---- trainer_state.json, run files, the model card -----------------------------------------------------------------
def test_export_of_a_run_with_absurd_trainer_state_is_one_line_and_writes_nothing(run, tmp_path):
    edit_json(step_dir(run) / "trainer_state.json", lambda s: s.update(step=10**9, tokens_per_step="a" * 1000))
    start = time.perf_counter()
    result = python_module("model.convert", "--checkpoint", run, "--to-hf", tmp_path / "hf")
    assert_one_line_error(result, "trainer_state.json", "tokens_per_step must be an integer")
    assert time.perf_counter() - start < 60  # once: str * 10**9, a terabyte string
    assert not (tmp_path / "hf" / "model.safetensors").exists()


def test_a_planted_command_line_stays_inert_text_in_the_model_card(run, shards, tmp_path):
    data = Path(shutil.copytree(shards, tmp_path / "shards"))
    edit_json(data / "manifest.json", lambda m: m.update(command=EVIL))
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(shards), str(data)))
    done = python_module("model.convert", "--checkpoint", run, "--to-hf", tmp_path / "hf")
    assert done.returncode == 0, done.stderr[-2000:]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "Pwned" in card and not any(line.startswith("## Pwned") for line in card.splitlines())
    data_row = next(line for line in card.splitlines() if line.startswith("| data |"))
    assert len(re.findall(r"(?<!\\)\|", data_row)) == 3  # the row keeps its two cells
    assert "`x ## Pwned <img src=x onerror=alert(1)> \\| a \\| b \\|`" in data_row  # a code span: shown, not run


def test_resume_from_a_malformed_trainer_state_is_one_line_and_keeps_the_run(run, shards):
    checkpoint = step_dir(run)
    edit_json(checkpoint / "trainer_state.json", lambda s: s["loader"].update(samples_consumed=-5))
    reseal_checkpoint(checkpoint)  # the file list agrees: only the loader stands in the way
    before = tree_digest(run / "checkpoints")
    result = run_train(1, train_args(shards, run, "--max-steps", "4"))
    assert_one_line_error(result, "trainer_state.json", "loader.samples_consumed must be 0 to")
    assert tree_digest(run / "checkpoints") == before


# ---- config values and Hugging Face folders ------------------------------------------------------------------------
@pytest.mark.parametrize("setting, fragment", [
    (["--set", "optim.lr=nan"], "optim.lr=nan must be a finite number"),
    (["--set", "optim.beta1=1.5"], "optim.beta1=1.5 must be in [0, 1)"),
    (["--set", f"train.seed={2**70}"], "train.seed="),
    (["--data", "a={shards}:1e308,b={shards}:1e308"], "the weights add up to inf"),
])
def test_an_absurd_config_value_is_one_line_before_any_work(shards, tmp_path, setting, fragment):
    setting = [part.format(shards=shards) for part in setting]
    run_dir = tmp_path / "run"
    args = [*TINY, "--data", str(shards), "--run-dir", str(run_dir), "--max-steps", "2", *setting]
    assert_one_line_error(run_train(1, args, timeout=120), fragment)
    assert not run_dir.exists()


def test_import_of_a_hugging_face_folder_with_an_escaping_index_is_one_line(run, tmp_path):
    export = tmp_path / "hf"
    done = python_module("model.convert", "--checkpoint", run, "--to-hf", export)
    assert done.returncode == 0, done.stderr[-2000:]
    (export / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"transformer.wte.weight": "../run/checkpoints/step_000002/model/model.safetensors"}}))
    result = python_module("model.convert", "--from-hf", export, "--out", tmp_path / "imported")
    assert_one_line_error(result, "model.safetensors.index.json", "not a .safetensors file name of this folder")
    assert not (tmp_path / "imported" / "model.safetensors").exists()
    (export / "model.safetensors.index.json").write_text("[" * 100_000)
    assert_one_line_error(python_module("model.convert", "--from-hf", export, "--out", tmp_path / "imported"),
                          "nested too deeply")


# ---- a full disk between checkpoints -------------------------------------------------------------------------------
def test_a_disk_that_fills_between_checkpoints_stops_at_the_next_save_and_the_resume_completes(trained, shards,
                                                                                                  tmp_path):
    checkpoint_bytes = sum(p.stat().st_size for p in step_dir(trained).rglob("*") if p.is_file())
    # Room for two checkpoints, and for the trainer's free-space check at each start (5 x the fp32 weights)
    room = checkpoint_bytes + 5 * (step_dir(trained) / "model" / "model.safetensors").stat().st_size + 16 * 2**20
    disk, out = tmp_path / "disk", tmp_path / "out"
    out.mkdir()
    run_dir = disk / "run"
    args = train_args(shards, run_dir, "--max-steps", "4", "--set", "log.plot_every=1", "--set",
                      "log.tensorboard=true")
    command = " ".join(f"'{a}'" for a in ["-m", "model.train", *args])
    # The trainer starts; once step 2 is committed the disk is filled to the last byte; the user then frees it.
    script = f"""
        $PY {command} > {out}/1.out 2> {out}/1.err & pid=$!
        for i in $(seq 3000); do [ -d {run_dir}/checkpoints/step_000002 ] && break; sleep 0.1; done
        dd if=/dev/zero of={disk}/filler bs=64k 2> /dev/null
        wait $pid; echo $? > {out}/1.rc
        ls {run_dir}/checkpoints > {out}/1.ls
        rm {disk}/filler
        $PY {command} > {out}/2.out 2> {out}/2.err; echo $? > {out}/2.rc
        cp {run_dir}/metrics.jsonl {out}/metrics.jsonl
    """
    done = run_on_small_disk(disk, room, script, env=train_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first_err = (out / "1.err").read_text()
    assert int((out / "1.rc").read_text()) == 2, first_err[-3000:]
    assert "Traceback" not in first_err and "Exception in thread" not in first_err, first_err[-3000:]
    errors = [line for line in first_err.replace("\r", "\n").splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot write checkpoint" in errors[0] and "no space left" in errors[0], errors
    assert (out / "1.ls").read_text().split() == ["step_000002"]  # untouched, and no unfinished save counted
    assert int((out / "2.rc").read_text()) == 0, (out / "2.err").read_text()[-3000:]
    assert "step_000002 at step 2" in (out / "2.out").read_text()  # step 2 verified and resumed from
    steps = [r["step"] for r in (json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
             if "loss" in r]
    assert steps == [1, 2, 3, 4]  # steps 3 and 4 trained again after the resume, each logged once

