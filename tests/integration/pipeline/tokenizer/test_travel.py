"""A tokenizer trained by `pipeline.prepare --tokenizer train` travels: shards -> model.train -> checkpoint ->
model.sample and model.convert --to-hf, with no flag; anything that mixes tokenizers is refused in one line.

Real components: prepare on the sample corpus (datatrove, rustbpe, tiktoken), DeepSpeed on the CPU over gloo,
transformers for the export. The two pieces under it, the block encoder of the tokenize stage and the byte counts behind
val_bpb: tests/unit/pipeline/tokens/test_block_encoder.py and tests/unit/model/test_bits_per_byte.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer
from pipeline.tokenizer.folder import load_tokenizer_folder
from tests.support.train import REPO_ROOT, TINY, read_metrics, run_train

VOCAB = 1024


def run(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "wiki-bpe"
    result = run("-m", "pipeline.prepare", "--corpus", "sample", "--limit", "1500", "--no-dedup", "--output", out,
                 "--tokenizer", "train", "--vocab-size", VOCAB, "--shard-tokens", "100000")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_prepare_trains_records_and_keeps_the_tokenizer(shards):
    manifest = read_manifest(shards)
    copy = load_tokenizer_folder(shards / "tokenizer")  # verified: every sha256 matches
    assert manifest["vocab_size"] == VOCAB == copy.vocab_size
    assert manifest["eot_token"] == copy.eot_token and manifest["tokenizer_sha256"] == copy.sha256
    assert copy.meta["training"]["documents"] == 1500  # trained on this run's documents
    tokens = np.concatenate([open_shard(shards / entry["file"]) for entry in manifest["shards"]])
    assert tokens.max() < VOCAB and (tokens == copy.eot_token).sum() == manifest["totals"]["documents"]
    inspected = run("-m", "pipeline.inspect", shards)
    assert inspected.returncode == 0 and "<|endoftext|>" in inspected.stdout


def test_prepare_reuses_a_tokenizer_folder(shards, tmp_path):
    out = tmp_path / "again"
    result = run("-m", "pipeline.prepare", "--corpus", "sample", "--limit", "200", "--no-dedup", "--output", out,
                 "--tokenizer", shards / "tokenizer")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_manifest(out)["tokenizer_sha256"] == read_manifest(shards)["tokenizer_sha256"]
    assert load_tokenizer_folder(out / "tokenizer").sha256 == read_manifest(shards)["tokenizer_sha256"]


@pytest.mark.parametrize("args, fragment", [
    (["--tokenizer", "pipeline"], "not a tokenizer folder"),
    (["--tokenizer", "./no/such/folder"], "no such folder"),
    (["--tokenizer", "train"], "needs --vocab-size"),
    (["--tokenizer", "train", "--vocab-size", "70000"], "65,536"),
    (["--vocab-size", "4096"], "applies only to --tokenizer train"),
])
def test_prepare_refuses_bad_tokenizer_options_in_one_line(tmp_path, args, fragment):
    out = tmp_path / "out"
    assert fragment in error_line(run("-m", "pipeline.prepare", "--output", out, *args))
    assert not out.exists()


def test_train_sample_and_export_use_the_tokenizer_without_a_flag(shards, tmp_path, tiny_shards):
    run_dir = tmp_path / "run"
    result = run_train(1, [*TINY, "--data", str(shards), "--run-dir", str(run_dir), "--max-steps", "4",
                           "--set", "eval.every=2", "--set", "checkpoint.every=4"])
    assert result.returncode == 0, result.stderr[-3000:]
    evaluations = [r for r in read_metrics(run_dir) if "val_loss" in r]
    assert evaluations and all(0 < r["val_bpb"] < 20 for r in evaluations)
    # bits per byte = nats per token / ln 2 / bytes per token, roughly (special tokens aside)
    state = json.loads(next(run_dir.glob("checkpoints/step_*/trainer_state.json")).read_text())
    assert state["model"]["vocab_size"] == VOCAB and state["tokenizer"]["vocab_size"] == VOCAB
    assert load_tokenizer_folder(run_dir / "checkpoints" / "step_000004" / "model" / "tokenizer").vocab_size == VOCAB

    prompt = "The history of the"
    sampled = run("-m", "model.sample", "--checkpoint", run_dir, "--prompt", prompt, "--temperature", "0",
                  "--max-new-tokens", "12")
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    hf = tmp_path / "hf"
    converted = run("-m", "model.convert", "--checkpoint", run_dir, "--to-hf", hf)
    assert converted.returncode == 0, converted.stderr[-2000:]

    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(hf)
    model = GPT2LMHeadModel.from_pretrained(hf).eval()
    assert tokenizer.eos_token_id == model.config.eos_token_id == VOCAB - 8
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert ids[0].tolist() == get_tokenizer(str(shards / "tokenizer")).encode(prompt)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert tokenizer.decode(out[0]) == sampled.stdout.rstrip("\n")

    # the same run folder on GPT-2 shards: the checkpoint's ids mean other text
    resumed = run_train(1, [*TINY, "--data", str(tiny_shards), "--run-dir", str(run_dir), "--max-steps", "6"])
    line = error_line(resumed)
    assert "was trained with tokenizer" in line and "gpt2" in line


def test_config_with_another_vocabulary_is_refused(shards, tmp_path):
    result = run_train(1, [*TINY, "--data", str(shards), "--run-dir", str(tmp_path / "run"),
                           "--set", "model.vocab_size=50257"])
    line = error_line(result)
    assert "1,024 tokens" in line and "model.vocab_size=50,257" in line
