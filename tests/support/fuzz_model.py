"""A tiny checkpoint for the fuzz tests, as the trainer leaves it, and the mutators of its weights and its
trainer_state.json (see tests/support/fuzz_pipeline.py for the pattern).

    build_checkpoint(dest, tok, shards)   RUN/checkpoints/step_000004/{model/{model.safetensors, config.json,
                                          tokenizer/}, trainer_state.json}, RUN/config.yaml, RUN/metrics.jsonl
"""
from __future__ import annotations

import io
import json
import random
import shutil
import struct
from pathlib import Path

from tests.support.fuzz import Raw, dumps_with_raw, mutate_bytes, mutate_entry, mutate_json
from tests.support.fuzz_pipeline import each, mutate_tokenizer

STEP = "step_000004"


def build_checkpoint(dest: Path, tokenizer_folder: Path, shard_folder: Path) -> Path:
    """RUN/checkpoints/step_000004 as the trainer leaves it (without the DeepSpeed part), plus config.yaml and
    metrics.jsonl in RUN (the model card reads them)."""
    import torch

    from model.checkpoint.weights import save_weights
    from model.gpt import GPT, GPTConfig
    from pipeline.shards import ShardFolder
    from pipeline.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(str(tokenizer_folder))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=16))
    step = dest / "checkpoints" / STEP
    save_weights(model, step / "model")
    tokenizer.copy_into(step / "model")
    shards = ShardFolder(shard_folder)
    state = {"loader": {"samples_consumed": 8, "seed": 1337, "shuffle": True, "seq_len": 16,
                        "windows_per_epoch": _windows(shards, 16), "split": "train"},
             "data_fingerprint": shards.fingerprint(), "zero_stage": 0, "precision": "fp32", "tokens_per_step": 32,
             "tokenizer": tokenizer.record(), "step": 4, "world_size": 1,
             "model": {k: v for k, v in vars(model.config).items()}, "saved": "2026-01-01T00:00:00+0000"}
    (step / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
    (dest / "config.yaml").write_text(f"data:\n  dir: {shard_folder}\noptim:\n  lr: 0.001\n")
    (dest / "metrics.jsonl").write_text(json.dumps({"step": 4, "val_loss": 5.5, "val_bpb": 1.9}) + "\n")
    return dest


def _windows(shards, seq_len: int) -> int:
    from pipeline.shards import open_shard

    return sum((len(open_shard(p)) - 1) // seq_len for p in shards.paths("train"))


def _rewrite_safetensors_header(path: Path, change) -> None:
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    text = change(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length:])


def mutate_weights(rng: random.Random, root: Path, run_name: str = "run") -> str:
    """Corrupt the weights folder of root/run's checkpoint: config.json (as JSON), model.safetensors (its header
    as JSON, its bytes, dtypes, NaN values), or what kind of entry either file or the folder is."""
    model = root / run_name / "checkpoints" / STEP / "model"
    config, weights = model / "config.json", model / "model.safetensors"
    choice = rng.random()
    if choice < 0.3:
        text, what = mutate_json(rng, json.loads(config.read_text()))
        config.write_text(text)
        return f"config.json: {what}"
    if choice < 0.5:
        holder = {}

        def change(header):
            text, holder["what"] = mutate_json(rng, header)
            return text
        _rewrite_safetensors_header(weights, change)
        return f"safetensors header: {holder['what']}"
    if choice < 0.6:
        dtype = rng.choice(("I32", "U32", "I64", "F16", "BF16", "F64", "BOOL", "U8", "F8_E4M3", "I8", "XX"))

        def retype(header):
            name = rng.choice(sorted(k for k in header if k != "__metadata__"))
            header[name]["dtype"] = dtype
            return json.dumps(header)
        _rewrite_safetensors_header(weights, retype)
        return f"a tensor's dtype = {dtype}"
    if choice < 0.7:
        data = bytearray(weights.read_bytes())
        start = 8 + struct.unpack("<Q", data[:8])[0]
        value = rng.choice((float("nan"), float("inf"), float("-inf"), 3e38, 1e-45))
        at = rng.randrange(start, len(data) - 4) // 4 * 4
        data[at:at + 4] = struct.pack("<f", value)
        weights.write_bytes(bytes(data))
        return f"a weight = {value}"
    if choice < 0.82:
        length = struct.unpack("<Q", weights.read_bytes()[:8])[0]
        new_bytes, what = mutate_bytes(rng, weights.read_bytes(), hot=(0, 8 + length))
        weights.write_bytes(new_bytes)
        return f"model.safetensors: {what}"
    if choice < 0.94:  # the tokenizer copy the sampler decodes with
        return f"model/tokenizer: {mutate_tokenizer(rng, model, 'tokenizer')}"
    target = rng.choice((config, weights, weights, model))
    return f"model/{mutate_entry(rng, target, root / 'outside')}"


def use_weights(run: Path) -> None:
    """`python -m model.sample --checkpoint RUN --max-new-tokens 2` in process: resolve the checkpoint, load and
    check the model, find its tokenizer, sample and print."""
    from contextlib import redirect_stderr, redirect_stdout

    from model.sample import parse_args, run as sample

    out = io.TextIOWrapper(io.BytesIO())  # (sample reconfigures stdout's error handler: a StringIO has none)
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        sample(parse_args(["--checkpoint", str(run), "--max-new-tokens", "2", "--device", "cpu", "--seed", "1"]))


def mutate_trainer_state(rng: random.Random, root: Path, run_name: str = "run") -> str:
    """Corrupt root/run's trainer_state.json: as JSON mostly, as bytes, or what kind of entry it is."""
    path = root / run_name / "checkpoints" / STEP / "trainer_state.json"
    choice = rng.random()
    if choice < 0.65:
        text, what = mutate_json(rng, json.loads(path.read_text()))
        path.write_text(text)
        return f"trainer_state.json: {what}"
    if choice < 0.75:  # no tokenizer copy: the sampler and the export take the tokenizer the state records
        shutil.rmtree(path.parent / "model" / "tokenizer")
        state = json.loads(path.read_text())
        text, what = mutate_json(rng, state["tokenizer"])
        path.write_text(dumps_with_raw({**state, "tokenizer": Raw(text, "")}))
        return f"trainer_state.json without a tokenizer copy: tokenizer record {what}"
    if choice < 0.85:
        state = json.loads(path.read_text())
        state["loader"]["mixture"] = {"seed": 1, "shuffle": True, "block": 64, "phase_start": 0,
                                      "sources": {"web": {"windows": 10, "consumed": 3, "weight": 1.0, "base": 0}}}
        text, what = mutate_json(rng, state)
        path.write_text(text)
        return f"trainer_state.json with a mixture: {what}"
    if choice < 0.93:
        new_bytes, what = mutate_bytes(rng, path.read_bytes())
        path.write_bytes(new_bytes)
        return f"trainer_state.json bytes: {what}"
    return mutate_entry(rng, path, root / "outside")


def use_trainer_state(run: Path, shards: Path, model) -> None:
    """What reads trainer_state.json: a resume (its checks, the tokenizer, the loader position and the next batch),
    the export's model card, and the sampler's tokenizer lookup. `model` is the checkpoint's (its weights are intact
    in every case: loaded once by the caller)."""
    from types import SimpleNamespace

    from model.checkpoint.manager import check_compatible, needs_universal
    from model.data.training_data import TrainingData
    from model.model_card import model_card, training_facts
    from model.run_tokenizer import check_resume_tokenizer, weights_tokenizer
    from pipeline.tokenizer import get_tokenizer

    step = run / "checkpoints" / STEP
    each(lambda: model_card(model, "tok", 0, training_facts(step / "model"), "fuzz"),
         lambda: weights_tokenizer(step / "model").decode([1, 2]))
    check_resume_tokenizer(step, get_tokenizer(str(shards / "tokenizer")))
    state = check_compatible(step, model.config, 16)
    needs_universal(state, 2, 1, "bf16")
    data = TrainingData(SimpleNamespace(sources=None, dir=str(shards), seq_len=16, seed=1337, shuffle=True,
                                        packing="stream", packing_window=1000),
                        micro_batch=2, rank=0, world_size=1, with_validation=False)
    data.resume(state["loader"])
    data.train.next_batch()
