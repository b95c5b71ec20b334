"""What a `--tokenizer` value names, and how a tokenizer travels with shards and checkpoints.

A tokenizer is either a tiktoken encoding name ("gpt2", the default, built offline) or a tokenizer folder made by
`python -m pipeline.tokenizer train` (pipeline/tokenizer/folder.py). `describe_tokenizer` gives the record that
manifests and checkpoints keep:

    {"name": "gpt2", "vocab_size": 50257, "eot_token": 50256, "sha256": null}          a tiktoken name
    {"path": "tokenizers/zh-en-32k", "name": "zh-en-32k", "vocab_size": 32768,
     "eot_token": 32760, "sha256": "<sha256 of its gptstack_tokenizer.json>"}           a folder

A folder is copied next to whatever uses it (`copy_tokenizer_into`: the shard folder's `tokenizer/`, every
checkpoint's `tokenizer/`), so shards and checkpoints keep working when the original folder moves or is deleted, and
whoever reads them (model.train, model.sample, HellaSwag, model.convert) finds the tokenizer without a flag.
"""
import os
import shutil
import uuid
from pathlib import Path

from gptstack.errors import InputError
from gptstack.files import fsync_dir
from pipeline.tokenizer.folder import META_FILE, TokenizerFolder, is_tokenizer_folder, load_tokenizer_folder

COPY_DIR = "tokenizer"  # the copy inside a shard folder or a checkpoint


def looks_like_path(spec: str) -> bool:
    """A --tokenizer value that means a folder rather than a tiktoken name ("gpt2", "r50k_base", ...)."""
    return os.sep in spec or "/" in spec or spec.startswith(".") or Path(spec).is_dir()


def load_folder_spec(spec: str) -> TokenizerFolder:
    """The verified folder a --tokenizer PATH names (one-line InputError when it is not a tokenizer folder)."""
    path = Path(spec)
    if not path.exists():
        raise InputError(f"--tokenizer {spec}: no such folder (a tiktoken name such as gpt2, or a folder made by "
                         "`python -m pipeline.tokenizer train`)")
    if not path.is_dir() or not is_tokenizer_folder(path):
        raise InputError(f"--tokenizer {spec}: not a tokenizer folder (no {META_FILE}; make one with "
                         "`python -m pipeline.tokenizer train`)")
    return load_tokenizer_folder(path)


def describe_tokenizer(spec: str) -> dict:
    """The record manifests and checkpoints keep for `spec` (see the module docstring)."""
    if looks_like_path(spec):
        folder = load_folder_spec(spec)
        return {"path": str(spec), "name": folder.meta["name"], "vocab_size": folder.vocab_size,
                "eot_token": folder.eot_token, "sha256": folder.sha256}
    from pipeline.tokenizer.encodings import get_encoding

    encoding = get_encoding(spec)
    return {"name": spec, "vocab_size": encoding.n_vocab, "eot_token": encoding.eot_token, "sha256": None}


def same_tokenizer(a: dict, b: dict) -> bool:
    """Two records name the same tokenizer: the same folder contents, or the same tiktoken name."""
    if a.get("sha256") or b.get("sha256"):
        return a.get("sha256") == b.get("sha256")
    return a.get("name") == b.get("name")


def tokenizer_label(record: dict) -> str:
    return record.get("path") or record["name"]


def copy_tokenizer_into(source, destination_parent, name: str = COPY_DIR) -> Path | None:
    """Copy a tokenizer folder to `destination_parent/name` (atomically: a temporary sibling renamed into place,
    replacing an older copy); None when `source` is a tiktoken name (nothing to copy)."""
    if source is None or not looks_like_path(str(source)):
        return None
    folder = load_folder_spec(str(source))
    parent = Path(destination_parent)
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / name
    temp = parent / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        shutil.copytree(folder.path, temp)
        for file in temp.iterdir():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
        if target.exists():
            old = parent / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(temp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temp, target)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target


def tokenizer_spec_of(folder, record: dict | None) -> str:
    """The --tokenizer value to use for something (a shard folder, a checkpoint) that holds `record` and maybe a
    `tokenizer/` copy: the copy when there is one (verified against the record), else the tiktoken name."""
    copy = Path(folder) / COPY_DIR
    if copy.is_dir():
        loaded = load_tokenizer_folder(copy)
        if record and record.get("sha256") and loaded.sha256 != record["sha256"]:
            raise InputError(f"{copy}: is not the tokenizer recorded beside it (sha256 differs)")
        return str(copy)
    if record and record.get("sha256"):
        raise InputError(f"{folder}: records tokenizer {tokenizer_label(record)!r} but holds no {COPY_DIR}/ copy")
    return (record or {}).get("name") or "gpt2"


def shard_folder_tokenizer(directory, manifest: dict) -> str:
    """The --tokenizer value for the shards of `directory`: its `tokenizer/` copy, or the manifest's tiktoken name."""
    return tokenizer_spec_of(directory, {"name": manifest.get("tokenizer"), "sha256": manifest.get("tokenizer_sha256")})
