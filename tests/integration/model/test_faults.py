"""Fault injection against the trainer and the model tools (issue 13): planted pickles, colliding runs, damaged and
half-written checkpoints, a full disk, token ids outside the vocabulary, a diverging loss, model.convert misuse, ports,
and batch layouts at scale. Real processes (`python -m model.train`, torchrun), real signals, real files.

Cases that already passed before issue 13 and live elsewhere (not repeated here): an unknown config key, a truncated,
missing or corrupt shard, a checkpoint of another model size (tests/test_train.py); kill -9 of a 2-rank ZeRO-2 run and
a bit-identical resume (tests/test_train_resume.py); SIGUSR1 under Slurm (tests/test_slurm_pretrain.py).
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.faults import (alive, assert_one_line_error, descendants, kill_tree, listening_tcp_ports,
                                  plant_pickle, python_module, reseal_checkpoint, run_on_small_disk, set_token,
                                  tree_digest, truncate, wait_for)
from tests.support.train import (CADENCE, REPO_ROOT, TINY, read_metrics, run_train, step_losses, train_command,
                                 train_env)

CONFIGS = REPO_ROOT / "configs"
# The shared run (tests/integration/conftest.py: tiny_run, with CADENCE): 1 rank, ZeRO-1, 4 steps, a checkpoint and
# a validation every 2 steps: checkpoints/step_000002 and step_000004. args() below resumes it with the same cadence.
CHECKPOINT_FILES = {  # each kind of file a checkpoint holds, by what reads it
    "rng": "rng/rank_00000.pt",
    "model_states": "deepspeed/mp_rank_00_model_states.pt",
    "optim_states": "deepspeed/zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "weights": "model/model.safetensors",
}


def args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, *CADENCE, "--data", str(data), "--run-dir", str(run_dir), *extra]


def train(data: Path, run_dir: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_train(1, args(data, run_dir, *extra), timeout=timeout)


def start_train(data: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(train_command(1, args(data, run_dir, *extra)), cwd=REPO_ROOT, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def loss_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    return [r["step"] for r in read_metrics(run_dir) if "loss" in r] if path.exists() else []


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# ---- 1: nothing runs that a checkpoint smuggles in --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rng", "model_states", "optim_states"])
def test_planted_pickle_is_refused_and_never_runs(tiny_shards, run_copy, tmp_path, kind):
    marker = tmp_path / "pwned"
    checkpoint = run_copy / "checkpoints" / "step_000004"
    plant_pickle(checkpoint / CHECKPOINT_FILES[kind], marker)
    reseal_checkpoint(checkpoint)  # the list of sizes alone would refuse it: reach the loader itself
    result = train(tiny_shards, run_copy, "--resume", str(checkpoint), "--max-steps", "6")
    assert not marker.exists(), "resuming ran a command planted in the checkpoint"
    assert_one_line_error(result, "step_000004")
    assert loss_steps(run_copy) == [1, 2, 3, 4]  # nothing trained on top


def test_planted_pickle_in_a_universal_checkpoint_never_runs(tiny_shards, run_copy, tmp_path):
    """A checkpoint resumed under another ZeRO stage goes through DeepSpeed's universal form (step_N/universal/,
    one .pt per parameter); a run folder shared with that folder inside is just as dangerous."""
    checkpoint = run_copy / "checkpoints" / "step_000004"
    assert_ok(train(tiny_shards, tmp_path / "converted", "--resume", str(checkpoint), "--set",
                    "train.zero_stage=2", "--max-steps", "5"))
    universal_files = sorted((checkpoint / "universal").rglob("*.pt"))
    assert universal_files, "the ZeRO-1 -> ZeRO-2 resume wrote no universal checkpoint"
    marker = tmp_path / "pwned"
    for path in universal_files:  # fp32.pt, exp_avg.pt, exp_avg_sq.pt, step.pt of every parameter
        plant_pickle(path, marker)
    result = train(tiny_shards, tmp_path / "again", "--resume", str(checkpoint), "--set", "train.zero_stage=2",
                   "--max-steps", "5")
    assert not marker.exists(), "resuming ran a command planted in the universal checkpoint"
    assert_one_line_error(result, "step_000004")


# ---- 2: two trainers on one run folder ---------------------------------------------------------------------------
def test_second_trainer_on_a_busy_run_folder_refuses_and_the_first_goes_on(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    command = ["--max-steps", "200", "--set", "checkpoint.every=0", "--set", "eval.every=0"]
    first = start_train(tiny_shards, run_dir, *command)
    try:
        wait_for(lambda: bool(loss_steps(run_dir)), 240, "the first trainer's step 1", first)
        second = train(tiny_shards, run_dir, *command)
        assert first.poll() is None, "the second trainer disturbed the first"
        assert_one_line_error(second, str(run_dir))
        first.send_signal(signal.SIGTERM)  # the first one stops cleanly, as under Slurm
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            kill_tree(first)
    assert first.returncode == 75, stdout[-2000:] + stderr[-2000:]
    reached = loss_steps(run_dir)[-1]
    assert loss_steps(run_dir) == list(range(1, reached + 1))  # every step once: nobody else wrote the metrics
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step_{reached:06d}"]


def test_lock_of_a_killed_trainer_is_taken_over_and_the_resume_is_bit_identical(tiny_shards, tiny_run, tmp_path):
    """kill -9 (no chance to clean up) after the step-2 checkpoint; the same command then resumes from it, not
    refused by the dead run's lock, and gives the very losses of the uninterrupted run."""
    run_dir = tmp_path / "run"
    process = start_train(tiny_shards, run_dir, "--max-steps", "4")
    committed = run_dir / "checkpoints" / "step_000002"
    try:
        wait_for(committed.is_dir, 240, "the step-2 checkpoint", process)
        process.send_signal(signal.SIGKILL)
        process.communicate()
    finally:
        if process.poll() is None:
            kill_tree(process)
    assert not (run_dir / "checkpoints" / "step_000004").exists(), "killed too late: the run had finished"
    result = train(tiny_shards, run_dir, "--max-steps", "4")
    assert_ok(result)
    assert f"resumed from {committed}" in result.stdout
    assert step_losses(run_dir) == step_losses(tiny_run)  # bit-identical floats
    assert [r["val_loss"] for r in read_metrics(run_dir) if "val_loss" in r] == \
        [r["val_loss"] for r in read_metrics(tiny_run) if "val_loss" in r]


# ---- SIGTERM: finish the step, checkpoint, exit 75, resume -----------------------------------------------------
def test_sigterm_checkpoints_exits_75_and_the_run_resumes(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    process = start_train(tiny_shards, run_dir, "--max-steps", "40", "--set", "checkpoint.every=0",
                          "--set", "eval.every=0")
    try:
        wait_for(lambda: len(loss_steps(run_dir)) >= 2, 240, "step 2", process)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            kill_tree(process)
    assert process.returncode == 75, stdout[-2000:]
    reached = loss_steps(run_dir)[-1]
    assert reached < 40
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step_{reached:06d}"]
    resumed = train(tiny_shards, run_dir, "--max-steps", str(reached + 2), "--set", "checkpoint.every=0",
                    "--set", "eval.every=0")
    assert_ok(resumed)
    assert f"at step {reached}" in resumed.stdout
    assert loss_steps(run_dir) == list(range(1, reached + 3))


# ---- 3: token ids outside the vocabulary; a loss that diverges ------------------------------------------------
@pytest.mark.parametrize("token", [50300, 60000])  # inside the padded vocabulary (50,304), beyond it
def test_token_outside_the_vocabulary_is_refused_before_step_1(tiny_shards, tmp_path, token):
    data = Path(shutil.copytree(tiny_shards, tmp_path / "shards"))
    set_token(data, "train_000001.bin", 12345, token)  # valid header, size and sha256: only the range is wrong
    result = train(data, tmp_path / "run", "--max-steps", "4")
    assert_one_line_error(result, "train_000001.bin", str(token))
    assert loss_steps(tmp_path / "run") == []
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_non_finite_loss_stops_the_run_without_checkpointing_a_broken_model(tiny_shards, tmp_path):
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    # lr 1e30: step 1 is fine, then the weights overflow and the loss is nan
    result = train(tiny_shards, run_dir, "--max-steps", "6", "--set", "optim.lr=1e30", "--set",
                   "checkpoint.every=1", "--set", "eval.every=0")
    line = assert_one_line_error(result, "loss")
    assert "step" in line
    assert len(loss_steps(run_dir)) < 6, "the run went on after its loss stopped being finite"
    for checkpoint in (run_dir / "checkpoints").glob("step_*"):
        weights = load_file(checkpoint / "model" / "model.safetensors")
        assert all(t.isfinite().all() for t in weights.values()), f"{checkpoint} holds non-finite weights"


# ---- 7: a damaged newest checkpoint ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CHECKPOINT_FILES))
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tiny_shards, tiny_run, run_copy, kind):
    truncate(run_copy / "checkpoints" / "step_000004" / CHECKPOINT_FILES[kind])
    result = train(tiny_shards, run_copy, "--max-steps", "4")
    assert_ok(result)
    said = result.stdout + result.stderr
    assert "step_000004" in said and "skipped" in said, said[-3000:]
    assert f"resumed from {run_copy / 'checkpoints' / 'step_000002'}" in result.stdout
    assert step_losses(run_copy) == step_losses(tiny_run)  # steps 3-4 trained again from step 2, exactly


@pytest.mark.parametrize("kind", sorted(CHECKPOINT_FILES))
def test_damaged_checkpoint_given_explicitly_is_one_line(tiny_shards, run_copy, kind):
    checkpoint = run_copy / "checkpoints" / "step_000004"
    truncate(checkpoint / CHECKPOINT_FILES[kind])
    result = train(tiny_shards, run_copy, "--resume", str(checkpoint), "--max-steps", "6")
    assert_one_line_error(result, "step_000004")
    assert loss_steps(run_copy) == [1, 2, 3, 4]


# ---- 8: disk full during a checkpoint -------------------------------------------------------------------------
def test_disk_full_during_a_save_is_one_line_and_the_next_start_cleans_up_first(tiny_shards, tiny_run, tmp_path):
    checkpoint_bytes = sum(p.stat().st_size for p in (tiny_run / "checkpoints" / "step_000004").rglob("*")
                           if p.is_file())
    disk = tmp_path / "disk"
    out = tmp_path / "out"
    out.mkdir()
    run_dir = disk / "run"
    command = " ".join(f"'{a}'" for a in ["-m", "model.train", *args(tiny_shards, run_dir, "--max-steps", "6")])
    # Room for two checkpoints and 60% of a third: the save of step 6 runs out of space.
    script = f"""
        $PY {command} > {out}/1.out 2> {out}/1.err; echo $? > {out}/1.rc
        ls -a {run_dir}/checkpoints > {out}/1.ls
        sha256sum {run_dir}/checkpoints/step_000004/model/model.safetensors > {out}/1.sha
        $PY {command} > {out}/2.out 2> {out}/2.err; echo $? > {out}/2.rc     # no space freed: refused
        ls -a {run_dir}/checkpoints > {out}/2.ls
        rm -rf {run_dir}/checkpoints/step_000002                             # the user frees space
        $PY {command} > {out}/3.out 2> {out}/3.err; echo $? > {out}/3.rc
        ls -a {run_dir}/checkpoints > {out}/3.ls
        sha256sum {run_dir}/checkpoints/step_000004/model/model.safetensors > {out}/3.sha
    """
    done = run_on_small_disk(disk, int(2.6 * checkpoint_bytes), script, env=train_env(), timeout=850)
    assert done.returncode == 0, done.stderr[-3000:]

    def outcome(n: int) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], int((out / f"{n}.rc").read_text()), (out / f"{n}.out").read_text(),
                                           (out / f"{n}.err").read_text())

    def listing(n: int) -> list[str]:
        return sorted(set((out / f"{n}.ls").read_text().split()) - {".", ".."})

    # 1: the save of step 6 fails: one line, exit 2, the earlier checkpoints untouched
    assert_one_line_error(outcome(1), "step_000006")
    assert "step_000002" in listing(1) and "step_000004" in listing(1)
    # 2: the next start first removes the unfinished save, then finds too little room: one line, no .tmp left
    assert_one_line_error(outcome(2), "GB free")
    assert listing(2) == ["step_000002", "step_000004"]
    # 3: with space freed by the user, it resumes from step 4 and finishes
    assert_ok(outcome(3))
    assert "step_000004 at step 4" in outcome(3).stdout
    assert listing(3) == ["step_000004", "step_000006"]
    # step 4, written before the disk filled up, is the very file it was (and it verified: run 3 resumed from it)
    assert (out / "3.sha").read_text().split()[0] == (out / "1.sha").read_text().split()[0]


# ---- 10: model.convert -----------------------------------------------------------------------------------------
def test_export_refuses_a_folder_holding_other_files(tiny_run, tmp_path):
    target = tmp_path / "hf"
    target.mkdir()
    (target / "README.md").write_text("my notes\n")
    (target / "config.json").write_text('{"model_type": "llama"}\n')
    before = tree_digest(target)
    result = python_module("model.convert", "--checkpoint", tiny_run, "--to-hf", target)
    assert_one_line_error(result, str(target))
    assert tree_digest(target) == before
    # an empty or a new folder is fine
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "new" / "hf"):
        done = python_module("model.convert", "--checkpoint", tiny_run, "--to-hf", folder)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def test_export_onto_a_file_is_one_line(tiny_run, tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"precious")
    assert_one_line_error(python_module("model.convert", "--checkpoint", tiny_run, "--to-hf", target), str(target))
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize("garbage", [
    b"\xff\xfe\x00 not text",
    b"[1, 2, 3]\n",
    b'{"model_type": "gpt2", "n_embd": "wide", "n_layer": 2, "n_head": 2, "n_positions": 64, "vocab_size": 100}',
    b'{"model_type": "gpt2", "n_embd": 64, "n_layer": -2, "n_head": 2, "n_positions": 64, "vocab_size": 100}',
])
def test_import_of_a_garbage_config_is_one_line(tmp_path, garbage):
    source = tmp_path / "hf"
    source.mkdir()
    (source / "config.json").write_bytes(garbage)
    result = python_module("model.convert", "--from-hf", source, "--out", tmp_path / "out")
    assert_one_line_error(result, "config.json")
    assert not (tmp_path / "out").exists()


# ---- 11: ports of a single-process trainer ---------------------------------------------------------------------
def test_single_process_trainer_listens_on_no_unexplained_port(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    process = start_train(tiny_shards, run_dir, "--max-steps", "40", "--set", "checkpoint.every=0",
                          "--set", "eval.every=0")
    try:
        wait_for(lambda: bool(loss_steps(run_dir)), 240, "step 1", process)
        ports = [p for pid in [process.pid] + descendants(process.pid) if alive(pid)
                 for p in listening_tcp_ports(pid)]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            kill_tree(process)
    assert process.returncode == 75
    unexplained = [(address, port) for address, port in ports if str(port) not in stdout + stderr]
    assert not unexplained, f"listening on {unexplained} without saying what for"


# ---- 12: the shipped configs at scale (every config on every rank count: tests/unit/model/test_config.py) -------
def test_micro_batch_is_lowered_on_two_ranks_keeping_the_step_and_data_order(tiny_shards, tiny_run, tmp_path):
    """8 sequences per step, micro_batch_size 8, 2 ranks: 4 per rank, same tokens per step, same samples in the
    same order as the 1-rank run (its loader state and, up to float sums, its losses)."""
    run_dir = tmp_path / "run"
    result = run_train(2, args(tiny_shards, run_dir, "--max-steps", "4", "--set", "train.micro_batch_size=8"))
    assert_ok(result)
    state = json.loads((run_dir / "checkpoints" / "step_000004" / "trainer_state.json").read_text())
    reference = json.loads((tiny_run / "checkpoints" / "step_000004" / "trainer_state.json").read_text())
    assert state["loader"] == reference["loader"]
    losses, reference_losses = step_losses(run_dir), step_losses(tiny_run)
    for step in range(1, 5):
        assert losses[step] == pytest.approx(reference_losses[step], rel=1e-5, abs=1e-5)


# ---- bad input that already gave one line: shards, manifest -----------------------------------------------------
def test_wrong_shard_magic_and_corrupt_manifest_are_one_line(tiny_shards, tmp_path):
    data = Path(shutil.copytree(tiny_shards, tmp_path / "magic"))
    shard = data / "train_000002.bin"
    raw = bytearray(shard.read_bytes())
    raw[0:4] = (12345).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))
    assert_one_line_error(train(data, tmp_path / "run1", "--max-steps", "2"), "train_000002.bin")
    data = Path(shutil.copytree(tiny_shards, tmp_path / "manifest"))
    (data / "manifest.json").write_text('{"format": "gptstack-shards", "shards": [')
    assert_one_line_error(train(data, tmp_path / "run2", "--max-steps", "2"), "manifest.json")
