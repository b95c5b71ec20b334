"""Training on a mixture of three real shard folders, with real DeepSpeed ZeRO-2 over gloo on CPU.

One reference run (2 ranks, 6 steps, checkpoints and evaluations at 3 and 6) on sources a:0.5, b:0.3, c:0.2,
where c is so small that it starts a second epoch, is compared with:
- a run SIGKILLed after its step-3 checkpoint and resumed: bit-identical per-step and per-source validation losses;
- its step-3 checkpoint resumed on 1 rank: the same windows (equal loader state), losses up to float sum order;
- its step-3 checkpoint resumed with c's weight set to 0 (an annealing-style change of the mix): c is read no more,
  a and b continue where they stopped.
And a mixture of two tokenizers is refused in one line before any process group exists.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from model.data.mixture import MixtureSampler, MixtureSource
from pipeline.shards import build_manifest, file_sha256, shard_entry, shard_name, write_manifest, write_shard
from pipeline.tokenizer import get_tokenizer
from tests.support.train import (REPO_ROOT, SHARED_TEXT, TINY, descendants, read_metrics, run_train, step_losses,
                                 train_command, train_env)

STEPS, HALF = 6, 3
WINDOWS_PER_STEP = 512 // 64  # TINY: 512 tokens per step, 64-token windows
WEIGHTS = {"a": 0.5, "b": 0.3, "c": 0.2}
TRAIN_TOKENS = {"a": 60_000, "b": 40_000, "c": 520}  # c: 8 windows, read 2.4 times in 6 steps


def write_folder(folder: Path, tokens: np.ndarray, train_tokens: int, tokenizer: str = "gpt2") -> Path:
    """val (4,000 tokens) + one train shard + manifest, as pipeline.prepare writes them."""
    folder.mkdir(parents=True)
    entries = []
    for index, (split, part) in enumerate([("val", tokens[:4000]), ("train", tokens[4000:4000 + train_tokens])]):
        name = shard_name(split, index)
        write_shard(folder / name, part)
        entries.append(shard_entry(name, split, len(part), 0, file_sha256(folder / name)))
    vocab_size = 50257 if tokenizer == "gpt2" else 50281  # p50k_base; a manifest holds uint16 ids
    write_manifest(folder, build_manifest(entries, tokenizer, vocab_size, vocab_size - 1))
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Three folders of different real web documents (the dclm sample split three ways), GPT-2 BPE."""
    encoding = get_tokenizer("gpt2").encoding
    documents = [json.loads(line)["text"] for line in SHARED_TEXT.read_text().splitlines() if line.strip()]
    root = tmp_path_factory.mktemp("sources")
    folders = {}
    for offset, name in enumerate(WEIGHTS):
        tokens = []
        for text in documents[offset::3]:
            tokens.extend(encoding.encode_ordinary(text) + [encoding.eot_token])
        folders[name] = write_folder(root / name, np.array(tokens, dtype=np.uint16), TRAIN_TOKENS[name])
    return folders


def mixture(sources: dict[str, Path], weights: dict[str, float] = WEIGHTS) -> str:
    return ",".join(f"{name}={sources[name]}:{weights[name]}" for name in weights)


def args(data: str, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--set", "train.zero_stage=2", "--set", "checkpoint.every=3", "--set", "eval.every=3",
            "--data", data, "--run-dir", str(run_dir), "--max-steps", str(STEPS), *extra]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def trainer_state(run_dir: Path, step: int) -> dict:
    return json.loads((run_dir / "checkpoints" / f"step_{step:06d}" / "trainer_state.json").read_text())


def consumed(state: dict) -> dict[str, int]:
    return {name: s["consumed"] for name, s in state["loader"]["mixture"]["sources"].items()}


def expected_consumed(sources: dict[str, Path], counter: int, weights: dict[str, float] = WEIGHTS) -> list[int]:
    windows = {name: (TRAIN_TOKENS[name] - 1) // 64 for name in sources}
    sampler = MixtureSampler([MixtureSource(n, windows[n], w) for n, w in weights.items()], seed=1337)
    return sampler.consumed(counter).tolist()


@pytest.fixture(scope="module")
def reference(sources, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference")
    result = run_train(2, args(mixture(sources), run_dir), timeout=900)
    assert_ok(result)
    return run_dir


def test_mixture_run_reports_every_source(sources, reference):
    state = trainer_state(reference, STEPS)
    windows = STEPS * WINDOWS_PER_STEP
    assert state["loader"]["samples_consumed"] == windows
    assert list(consumed(state).values()) == expected_consumed(sources, windows)
    for name, weight in WEIGHTS.items():  # shares over 48 windows: within the interleave's bound of S + 3
        assert abs(consumed(state)[name] - weight * windows) <= 6
    assert state["loader"]["mixture"]["sources"]["c"]["epoch"] >= 1  # the small source went round
    records = read_metrics(reference)
    last_step = [r for r in records if "loss" in r][-1]
    for name in WEIGHTS:
        assert last_step[f"tokens.{name}"] == consumed(state)[name] * 64
        assert last_step[f"epochs.{name}"] == pytest.approx(consumed(state)[name] / ((TRAIN_TOKENS[name] - 1) // 64))
    evaluations = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evaluations] == [HALF, STEPS]
    for record in evaluations:
        per_source = {name: record[f"val_loss.{name}"] for name in WEIGHTS}
        assert len(set(per_source.values())) == 3  # three different validation splits
        assert record["val_loss"] == pytest.approx(sum(WEIGHTS[n] * loss for n, loss in per_source.items()))


def test_sigkill_then_resume_gives_bit_identical_losses(sources, reference, tmp_path):
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(train_command(2, args(mixture(sources), run_dir)), cwd=REPO_ROOT, env=train_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    committed = run_dir / "checkpoints" / f"step_{HALF:06d}"
    deadline = time.time() + 800
    while not committed.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in [process.pid] + descendants(process.pid):
        os.kill(pid, signal.SIGKILL)
    process.wait()
    assert committed.is_dir(), "the run never committed its step-3 checkpoint"
    assert not (run_dir / "checkpoints" / f"step_{STEPS:06d}").exists(), "killed too late: the run had finished"

    result = run_train(2, args(mixture(sources), run_dir), timeout=900)
    assert_ok(result)
    assert f"resumed from {committed}" in result.stdout
    assert step_losses(run_dir) == step_losses(reference)  # bit-identical floats
    evaluations = [{k: v for k, v in r.items()} for r in read_metrics(run_dir) if "val_loss" in r]
    assert evaluations == [r for r in read_metrics(reference) if "val_loss" in r]
    assert trainer_state(run_dir, STEPS)["loader"] == trainer_state(reference, STEPS)["loader"]


def test_two_rank_checkpoint_continues_the_same_windows_on_one_rank(sources, reference, tmp_path):
    run_dir = tmp_path / "one-rank"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(reference / "checkpoints" / f"step_{HALF:06d}", run_dir / "checkpoints" / f"step_{HALF:06d}")
    result = run_train(1, args(mixture(sources), run_dir), timeout=900)
    assert_ok(result)
    assert trainer_state(run_dir, STEPS)["loader"] == trainer_state(reference, STEPS)["loader"]
    reference_losses, losses = step_losses(reference), step_losses(run_dir)
    for step in range(HALF + 1, STEPS + 1):
        assert losses[step] == pytest.approx(reference_losses[step], rel=1e-5, abs=1e-5)


def test_changed_mix_at_resume_drops_a_weight_zero_source(sources, reference, tmp_path):
    run_dir = tmp_path / "annealed"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(reference / "checkpoints" / f"step_{HALF:06d}", run_dir / "checkpoints" / f"step_{HALF:06d}")
    annealed = {"a": 0.5, "b": 0.5, "c": 0.0}
    result = run_train(2, args(mixture(sources, annealed), run_dir), timeout=900)
    assert_ok(result)
    assert f"mixture changed at sample {HALF * WINDOWS_PER_STEP}" in result.stdout
    before, after = consumed(trainer_state(reference, HALF)), consumed(trainer_state(run_dir, STEPS))
    assert after["c"] == before["c"]  # weight 0: nothing more read
    assert after["a"] + after["b"] == before["a"] + before["b"] + HALF * WINDOWS_PER_STEP
    assert abs(after["a"] - before["a"] - 12) <= 1  # the new shares: half of the 24 new windows each
    records = [r for r in read_metrics(run_dir) if "loss" in r and r["step"] > HALF]
    assert {r["tokens.c"] for r in records} == {before["c"] * 64}


def test_two_tokenizers_are_refused_before_any_process_group(sources, tmp_path):
    tokens = np.fromfile(next(sources["a"].glob("train_*.bin")), dtype=np.uint16)[-20_000:]
    other = write_folder(tmp_path / "p50k", tokens, 10_000, tokenizer="p50k_base")
    data = f"{mixture(sources)},zh={other}:0.5"
    result = run_train(1, args(data, tmp_path / "refused"))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith("error: data.sources: zh") and "'p50k_base'" in lines[0], \
        result.stderr
    assert "parameters" not in result.stdout  # never got as far as building the model
    assert not (tmp_path / "refused" / "checkpoints").exists()
