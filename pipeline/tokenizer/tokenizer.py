"""One tokenizer object for the whole stack, resolved once and passed along (nanochat's `get_tokenizer()`).

`get_tokenizer(spec)` turns a `--tokenizer` value into a `Tokenizer`: a tiktoken encoding name ("gpt2", the
default, built offline) or the path of a tokenizer folder made by `python -m pipeline.tokenizer train`
(pipeline/tokenizer/folder.py, verified when opened). `stored_tokenizer(folder, record)` opens the copy that a shard
folder or a checkpoint keeps beside it. Whoever holds the object encodes and decodes with it, sizes the embedding
from it, records it, copies it and exports it, without resolving the value again:

    tokenizer.encoding            the tiktoken Encoding (built on first use, once per process)
    tokenizer.vocab_size          ids in all: the rows the embedding needs
    tokenizer.eot_token           the end-of-text id that ends every document
    tokenizer.record()            what manifests and checkpoints keep:
        {"name": "gpt2", "vocab_size": 50257, "eot_token": 50256, "sha256": null}          a tiktoken name
        {"path": "tokenizers/zh-en-32k", "name": "zh-en-32k", "vocab_size": 32768,
         "eot_token": 32760, "sha256": "<sha256 of its gptstack_tokenizer.json>"}           a folder
    tokenizer.copy_into(parent)   a folder's copy beside what uses it (the shard folder's `tokenizer/`, every
                                  checkpoint's `model/tokenizer/`), so shards and checkpoints keep working when the
                                  original folder moves or is deleted; nothing for a tiktoken name
    tokenizer.write_hf_files(dir) a folder's tokenizer.json + tokenizer_config.json for a Hugging Face export

The object pickles without its Encoding (datatrove sends it to Ray and Slurm workers), and a worker that opens the
folder again checks it still has the sha256 it was resolved with.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from pathlib import Path

import tiktoken

from gptstack.errors import InputError
from gptstack.files import atomic_write, copy_file, flat_folder_files, fsync_dir
from gptstack.formats import short
from pipeline.tokenizer.encodings import check_fits_uint16, named_encoding
from pipeline.tokenizer.folder import (DATA_FILES, HF_CONFIG_FILE, HF_FILE, META_FILE, TokenizerFolder,
                                       is_tokenizer_folder, load_tokenizer_folder)

COPY_DIR = "tokenizer"  # the copy inside a shard folder or a checkpoint
# ChatML's turn markers. A trained folder reserves ids for them (folder.SPECIAL_TOKENS); a tiktoken name gets the ids
# right after its own (GPT-2: 50257 and 50258), which fall in the embedding's padding rows (50,304 rows), so a
# pretrained GPT-2-vocabulary model fine-tunes into a chat model without a resize.
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")


def looks_like_path(spec: str) -> bool:
    """A --tokenizer value that means a folder rather than a tiktoken name ("gpt2", "r50k_base", ...)."""
    if os.sep in spec or "/" in spec or spec.startswith("."):
        return True
    try:
        return Path(spec).is_dir()
    except OSError:  # a name no file system takes (over 255 bytes: ENAMETOOLONG) is no folder
        return False


class Tokenizer:
    """A resolved tokenizer: a tiktoken name, or a verified tokenizer folder (see the module docstring)."""

    def __init__(self, spec: str, folder: TokenizerFolder | None = None):
        self.spec = str(spec)  # the --tokenizer value that names it again: the name, or the folder's path as given
        self.folder = folder
        self._encoding: tiktoken.Encoding | None = None

    # ---- identity
    @property
    def name(self) -> str:
        return self.folder.meta["name"] if self.folder else self.spec

    @property
    def path(self) -> Path | None:
        return self.folder.path if self.folder else None

    @property
    def sha256(self) -> str | None:
        return self.folder.sha256 if self.folder else None

    @property
    def label(self) -> str:
        """How messages name it: the folder's path, or the tiktoken name."""
        return self.spec

    def __str__(self) -> str:
        return self.spec  # messages name it as the user did

    def __repr__(self) -> str:
        return f"Tokenizer({self.spec!r})"

    # ---- ids
    @property
    def encoding(self) -> tiktoken.Encoding:
        if self._encoding is None:
            self._encoding = (_folder_encoding(self.folder.sha256, str(self.folder.path)) if self.folder
                              else named_encoding(self.spec))
        return self._encoding

    @property
    def vocab_size(self) -> int:
        return self.folder.vocab_size if self.folder else self.encoding.n_vocab

    @property
    def eot_token(self) -> int:
        return self.folder.eot_token if self.folder else self.encoding.eot_token

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, special-token text encoded as plain text (as the shards are)."""
        return self.encoding.encode_ordinary(text)

    def decode(self, ids) -> str:
        return self.encoding.decode(list(ids))

    def special_id(self, text: str) -> int:
        """The id of special token `text` (the one place special ids are resolved): a folder's reserved id, or for a
        tiktoken name its own specials and then CHAT_TOKENS after its last id."""
        if self.folder:
            token_id = self.folder.meta["special_tokens"].get(text)
        elif text in CHAT_TOKENS:
            token_id = self.encoding.n_vocab + CHAT_TOKENS.index(text)
        else:
            token_id = self.encoding._special_tokens.get(text)
        if token_id is None:
            raise InputError(f"tokenizer {self.label}: has no special token {text} (trained before it was reserved; "
                             "train a new one with `python -m pipeline.tokenizer train`)")
        return token_id

    def check_fits_uint16(self) -> None:
        """Refuse a tokenizer whose ids do not fit the uint16 shards."""
        check_fits_uint16(self.encoding)

    # ---- what travels with shards and checkpoints
    def record(self) -> dict:
        if self.folder:
            return {"path": self.spec, "name": self.name, "vocab_size": self.vocab_size,
                    "eot_token": self.eot_token, "sha256": self.sha256}
        return {"name": self.spec, "vocab_size": self.vocab_size, "eot_token": self.eot_token, "sha256": None}

    def same_as(self, record: dict) -> bool:
        """`record` (a manifest's or a checkpoint's) names this tokenizer: same folder contents or tiktoken name."""
        return same_tokenizer(self.record(), record)

    def copy_into(self, destination_parent, name: str = COPY_DIR) -> Path | None:
        """Copy a folder to `destination_parent/name` (atomically: a temporary sibling renamed into place, replacing
        an older copy); None for a tiktoken name (nothing to copy)."""
        if self.folder is None:
            return None
        parent = Path(destination_parent)
        parent.mkdir(parents=True, exist_ok=True)
        target = parent / name
        temp = parent / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            # plain files only, links never followed: a link planted in the folder would carry its target (a private
            # file, /dev/zero) into the shard folder and every checkpoint. Only the tokenizer's own files travel (each
            # bounded and verified on load): anything else left beside them (a 3 GiB file) is not copied everywhere.
            what = f"tokenizer {self.folder.path}"
            flat_folder_files(self.folder.path, what, InputError)
            temp.mkdir()
            for file_name in (META_FILE, *DATA_FILES):
                copy_file(self.folder.path / file_name, temp / file_name, what, InputError)
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

    def write_hf_files(self, folder, block_size: int) -> bool:
        """A folder's Hugging Face files into an export (False for a tiktoken name: not ours to write)."""
        if self.folder is None:
            return False
        copy_file(self.folder.path / HF_FILE, Path(folder) / HF_FILE, f"tokenizer {self.folder.path}", InputError)
        config = json.loads((self.folder.path / HF_CONFIG_FILE).read_text())
        config["model_max_length"] = block_size
        atomic_write(Path(folder) / HF_CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return True

    # ---- pickling: the folder is opened again (and checked against its sha256) where the object lands
    def __getstate__(self) -> dict:
        return {"spec": self.spec, "path": str(self.path) if self.path else None, "sha256": self.sha256}

    def __setstate__(self, state: dict) -> None:
        self.spec, self._encoding, self.folder = state["spec"], None, None
        if state["path"]:
            self.folder = load_tokenizer_folder(state["path"])
            if self.folder.sha256 != state["sha256"]:
                raise InputError(f"tokenizer {state['path']}: changed since this run resolved it (sha256 differs)")


@functools.lru_cache(maxsize=8)
def _folder_encoding(sha256: str, path: str) -> tiktoken.Encoding:
    return load_tokenizer_folder(path).encoding()  # built once per content in a process


def open_folder(spec: str) -> TokenizerFolder:
    """The verified folder a --tokenizer PATH names (one-line InputError when it is not a tokenizer folder)."""
    path = Path(spec)
    try:
        exists, is_folder = path.exists(), path.is_dir() and is_tokenizer_folder(path)
    except OSError as e:  # a name no file system takes (a part over 255 bytes: ENAMETOOLONG)
        raise InputError(f"--tokenizer {short(spec)}: not a usable path ({e.strerror})") from None
    if not exists:
        raise InputError(f"--tokenizer {spec}: no such folder (a tiktoken name such as gpt2, or a folder made by "
                         "`python -m pipeline.tokenizer train`)")
    if not is_folder:
        raise InputError(f"--tokenizer {spec}: not a tokenizer folder (no {META_FILE}; make one with "
                         "`python -m pipeline.tokenizer train`)")
    return load_tokenizer_folder(path)


def get_tokenizer(spec: str = "gpt2") -> Tokenizer:
    """The tokenizer a --tokenizer value names: a tiktoken name (checked now) or a tokenizer folder (verified now)."""
    spec = str(spec)
    if looks_like_path(spec):
        return Tokenizer(spec, open_folder(spec))
    tokenizer = Tokenizer(spec)
    tokenizer.encoding  # an unknown name fails here, in one line
    return tokenizer


def same_tokenizer(a: dict, b: dict) -> bool:
    """Two records name the same tokenizer: the same folder contents, or the same tiktoken name."""
    if a.get("sha256") or b.get("sha256"):
        return a.get("sha256") == b.get("sha256")
    return a.get("name") == b.get("name")


def tokenizer_label(record: dict) -> str:
    return record.get("path") or record["name"]


def stored_tokenizer(folder, record: dict | None) -> Tokenizer:
    """The tokenizer of something (a shard folder, a checkpoint's weights) that holds `record` and maybe a
    `tokenizer/` copy: the copy when there is one (verified against the record), else the recorded tiktoken name."""
    copy = Path(folder) / COPY_DIR
    if copy.is_dir():
        tokenizer = Tokenizer(str(copy), load_tokenizer_folder(copy))
        if record and record.get("sha256") and tokenizer.sha256 != record["sha256"]:
            raise InputError(f"{copy}: is not the tokenizer recorded beside it (sha256 differs)")
        return tokenizer
    if record and record.get("sha256"):
        raise InputError(f"{folder}: records tokenizer {tokenizer_label(record)!r} but holds no {COPY_DIR}/ copy")
    return get_tokenizer((record or {}).get("name") or "gpt2")


def shard_folder_tokenizer(directory, manifest: dict) -> Tokenizer:
    """The tokenizer of the shards of `directory`: its `tokenizer/` copy, or the manifest's tiktoken name."""
    return stored_tokenizer(directory, {"name": manifest.get("tokenizer"), "sha256": manifest.get("tokenizer_sha256")})
