"""Which tokenizer a training run, a checkpoint and an export use, taken from the data, never from a flag.

    shards (manifest.json + tokenizer/)  ->  model.train: the embedding has the manifest's vocab_size rows; the
                                             config may not say otherwise, a checkpoint of another tokenizer is
                                             refused; every checkpoint's model/ holds a copy in model/tokenizer/
    checkpoint model/tokenizer/          ->  model.sample, HellaSwag, model.convert --to-hf

A run on GPT-2 BPE (or another tiktoken name) has no folder to copy: its checkpoints record the name in
trainer_state.json, and a weights folder with neither (older checkpoints, imported GPT-2 weights) is GPT-2's.
"""
import dataclasses
import json
import shutil
from pathlib import Path

from model.checkpoint.layout import STATE_FILE, CheckpointError
from gptstack.errors import GPTStackError
from pipeline.tokenizer.folder import HF_CONFIG_FILE, HF_FILE, load_tokenizer_folder
from pipeline.tokenizer.spec import (COPY_DIR, describe_tokenizer, looks_like_path, same_tokenizer,
                                     shard_folder_tokenizer, tokenizer_label)


def first_data_dir(data_config) -> Path:
    """The folder whose tokenizer a run uses (a mixture's sources all share one; model/data/mixture_batches.py checks it)."""
    if data_config.dir:
        return Path(data_config.dir)
    first = data_config.sources[0]
    return Path(first["dir"] if isinstance(first, dict) else first.dir)


def data_tokenizer(data_config, manifest: dict) -> tuple[str, dict]:
    """(the --tokenizer value, its record) of the shards this run trains on."""
    spec = shard_folder_tokenizer(first_data_dir(data_config), manifest)
    record = describe_tokenizer(spec)
    if manifest.get("vocab_size") not in (None, record["vocab_size"]):
        raise GPTStackError(f"{first_data_dir(data_config)}: manifest.json says vocab_size {manifest['vocab_size']:,} "
                            f"but its tokenizer {tokenizer_label(record)!r} has {record['vocab_size']:,} ids")
    return spec, record


def sized_model_config(gpt_config, configured_vocab_size: int | None, record: dict, data_dir: str):
    """The model config with the tokenizer's vocabulary; a config that names another size is refused (one line)."""
    vocab_size = record["vocab_size"]
    if configured_vocab_size is not None and configured_vocab_size != vocab_size:
        from model.config import ConfigError

        raise ConfigError(f"{data_dir}: the shards' tokenizer {tokenizer_label(record)!r} has {vocab_size:,} tokens "
                          f"but the config sets model.vocab_size={configured_vocab_size:,}; remove model.vocab_size "
                          f"(the manifest sizes the embedding) or prepare the data with the matching tokenizer")
    return dataclasses.replace(gpt_config, vocab_size=vocab_size)


def check_resume_tokenizer(checkpoint: Path, record: dict) -> None:
    """Refuse to continue a checkpoint trained on the ids of another tokenizer (one line)."""
    state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    saved = state.get("tokenizer") or {"name": "gpt2", "sha256": None, "vocab_size": state.get("model", {}).get(
        "vocab_size")}
    if not same_tokenizer(saved, record) or saved.get("vocab_size") != record["vocab_size"]:
        raise CheckpointError(f"checkpoint {checkpoint} was trained with tokenizer {tokenizer_label(saved)!r} "
                              f"({saved.get('vocab_size')} ids) but these shards are {tokenizer_label(record)!r} "
                              f"({record['vocab_size']} ids): the token ids mean other text; train a new run or "
                              f"use shards of its tokenizer")


def weights_tokenizer(weights_folder) -> str:
    """The --tokenizer value of a weights folder: its tokenizer/ copy, else the name its checkpoint recorded, else
    gpt2."""
    weights_folder = Path(weights_folder)
    if (weights_folder / COPY_DIR).is_dir():
        return str(weights_folder / COPY_DIR)
    state = weights_folder.parent / STATE_FILE
    if state.is_file():
        recorded = json.loads(state.read_text()).get("tokenizer") or {}
        if recorded.get("name") and not recorded.get("sha256"):
            return recorded["name"]
    return "gpt2"


def export_tokenizer_to_hf(spec: str, folder: Path, block_size: int) -> bool:
    """Write a tokenizer folder's Hugging Face files into an export (False for a tiktoken name: not ours to write)."""
    if not looks_like_path(spec):
        return False
    tokenizer = load_tokenizer_folder(spec)
    shutil.copyfile(tokenizer.path / HF_FILE, Path(folder) / HF_FILE)
    config = json.loads((tokenizer.path / HF_CONFIG_FILE).read_text())
    config["model_max_length"] = block_size
    (Path(folder) / HF_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return True
