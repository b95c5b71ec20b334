"""Which tokenizer a training run, a checkpoint and an export use, taken from the data, never from a flag.

    shards (manifest.json + tokenizer/)  ->  model.train: the embedding has the manifest's vocab_size rows; the
                                             config may not say otherwise, a checkpoint of another tokenizer is
                                             refused; every checkpoint's model/ holds a copy in model/tokenizer/
    checkpoint model/tokenizer/          ->  model.sample, HellaSwag, model.convert --to-hf

A run on GPT-2 BPE (or another tiktoken name) has no folder to copy: its checkpoints record the name in
trainer_state.json, and a weights folder with neither (older checkpoints, imported GPT-2 weights) is GPT-2's.
"""
import dataclasses
from pathlib import Path

from gptstack.errors import GPTStackError
from model.checkpoint.layout import RESUME_FIELDS, STATE_FILE, CheckpointError, read_trainer_state
from model.config import ConfigError
from pipeline.shards import ShardFolder
from pipeline.tokenizer import COPY_DIR, Tokenizer, get_tokenizer, stored_tokenizer, tokenizer_label


def data_tokenizer(folder: ShardFolder) -> Tokenizer:
    """The tokenizer of the shards this run trains on (the manifest's vocab_size must be its size)."""
    tokenizer, manifest = folder.tokenizer, folder.manifest
    if manifest.get("vocab_size") not in (None, tokenizer.vocab_size):
        raise GPTStackError(f"{folder}: manifest.json says vocab_size {manifest['vocab_size']:,} "
                            f"but its tokenizer {tokenizer.label!r} has {tokenizer.vocab_size:,} ids")
    return tokenizer


def sized_model_config(gpt_config, configured_vocab_size: int | None, tokenizer: Tokenizer, data_dir: str):
    """The model config with the tokenizer's vocabulary; a config that names another size is refused (one line)."""
    vocab_size = tokenizer.vocab_size
    if configured_vocab_size is not None and configured_vocab_size != vocab_size:
        raise ConfigError(f"{data_dir}: the shards' tokenizer {tokenizer.label!r} has {vocab_size:,} tokens "
                          f"but the config sets model.vocab_size={configured_vocab_size:,}; remove model.vocab_size "
                          f"(the manifest sizes the embedding) or prepare the data with the matching tokenizer")
    return dataclasses.replace(gpt_config, vocab_size=vocab_size)


def check_resume_tokenizer(checkpoint: Path, tokenizer: Tokenizer) -> None:
    """Refuse to continue a checkpoint trained on the ids of another tokenizer (one line)."""
    state = read_trainer_state(Path(checkpoint), RESUME_FIELDS)
    saved = state.get("tokenizer") or {"name": "gpt2", "sha256": None, "vocab_size": state.get("model", {}).get(
        "vocab_size")}
    if not tokenizer.same_as(saved) or saved.get("vocab_size") != tokenizer.vocab_size:
        raise CheckpointError(f"checkpoint {checkpoint} was trained with tokenizer {tokenizer_label(saved)!r} "
                              f"({saved.get('vocab_size')} ids) but these shards are {tokenizer.label!r} "
                              f"({tokenizer.vocab_size} ids): the token ids mean other text; train a new run or "
                              f"use shards of its tokenizer")


def weights_tokenizer(weights_folder) -> Tokenizer:
    """The tokenizer of a weights folder: its tokenizer/ copy, else the name its checkpoint recorded, else gpt2.
    Where the checkpoint's trainer_state.json records one, the copy must be that one (its sha256): a swapped or
    planted copy would sample and export with another tokenizer's text for the same ids."""
    weights_folder = Path(weights_folder)
    # Read (and validated) first in any case: sample and convert refuse a malformed one before writing anything.
    state = (read_trainer_state(weights_folder.parent, required=())
             if (weights_folder.parent / STATE_FILE).is_file() else {})
    recorded = state.get("tokenizer") or {}
    copy = weights_folder / COPY_DIR
    if recorded.get("name") and not recorded.get("sha256"):
        if copy.exists() or copy.is_symlink():
            raise CheckpointError(f"{copy}: {weights_folder.parent / STATE_FILE} records the tiktoken tokenizer "
                                  f"{recorded['name']!r}, which has no folder: this copy is not the checkpoint's")
        return get_tokenizer(recorded["name"])
    if copy.is_dir() or recorded.get("sha256"):
        return stored_tokenizer(weights_folder, recorded or None)  # checked against the recorded sha256
    return get_tokenizer("gpt2")
