"""The token shard format, compatible with llm.c and modded-nanogpt.

A shard file is a 1024-byte header of 256 little-endian int32 followed by the tokens as little-endian uint16:

    header[0] = 20240520 (magic)   header[1] = 1 (version)   header[2] = number of tokens   header[3:] = 0

A shard folder holds `val_000000.bin`, `train_000001.bin`, `train_000002.bin`, ... and `manifest.json`, which is
written last: a folder without a manifest is not a finished output. Every file is written atomically
(gptstack/files.py), so a reader never sees half a file. This module owns the manifest too: `build_manifest` makes
it from the shard entries, `read_manifest` reads and checks it, `commit_shard_folder` moves finished shards into a
folder with the manifest last.
"""
import hashlib
import json
import os
import shutil
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gptstack.errors import InputError, ShardError
from gptstack.files import atomic_file, atomic_write
from gptstack.formats import check_value, field, read_json, short
from gptstack.output_folder import OutputFolder
from pipeline.tokenizer.tokenizer import Tokenizer, shard_folder_tokenizer

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "gptstack-shards"
MANIFEST_VERSION = 1
SPLITS = ("train", "val")
SHARD_GLOB = "*_[0-9][0-9][0-9][0-9][0-9][0-9].bin"  # every name `shard_name` makes
MAX_TOKEN_IDS = 65536  # uint16 ids
MAX_SHARD_TOKENS = 2**31 - 1  # the header's int32 count


def shard_name(split: str, index: int) -> str:
    """`val_000000.bin`, `train_000001.bin`, ... (the index runs over the whole folder, val first)."""
    return f"{split}_{index:06d}.bin"


def make_header(num_tokens: int) -> np.ndarray:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, num_tokens
    return header


def write_shard(path, tokens) -> str:
    """Write one shard atomically and return the sha256 of the whole file (header included).

    `tokens` is an array of token ids, or a list of such arrays (chunks) that are written one after the other
    without being joined in memory. Ids must fit uint16.
    """
    path = Path(path)
    chunks = [tokens] if isinstance(tokens, np.ndarray) else list(tokens)
    chunks = [np.asarray(chunk) for chunk in chunks]
    for chunk in chunks:
        if chunk.dtype != TOKEN_DTYPE and chunk.size and (chunk.min() < 0 or chunk.max() > 65535):
            raise ShardError(f"{path}: token ids outside 0..65535 cannot be stored as uint16")
    num_tokens = sum(chunk.size for chunk in chunks)
    if num_tokens >= 2**31:
        raise ShardError(f"{path}: {num_tokens} tokens do not fit the int32 header; use smaller --shard-tokens")
    digest = hashlib.sha256()
    with atomic_file(path) as file:
        parts = [make_header(num_tokens), *(np.ascontiguousarray(chunk, dtype=TOKEN_DTYPE) for chunk in chunks)]
        for part in parts:
            buffer = memoryview(part).cast("B")
            digest.update(buffer)
            file.write(buffer)
    return digest.hexdigest()


def read_header(path) -> np.ndarray:
    """The validated 256-int32 header of a shard; raises ShardError naming the file."""
    path = Path(path)
    try:
        info = path.lstat()
    except OSError as e:
        raise ShardError(f"{path}: cannot open shard ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):  # a link could point anywhere: shards are the folder's own plain files
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else \
            "not a plain file"
        raise ShardError(f"{path}: is {kind}; a shard must be a plain file inside its folder")
    size = info.st_size
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte shard header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise ShardError(f"{path}: bad magic number {header[0]} (expected {SHARD_MAGIC}): not a token shard")
    if header[1] != SHARD_VERSION:
        raise ShardError(f"{path}: unsupported shard version {header[1]} (this code reads version {SHARD_VERSION})")
    expected = HEADER_BYTES + 2 * int(header[2])
    if header[2] < 0 or size != expected:
        raise ShardError(
            f"{path}: file is {size} bytes but its header announces {header[2]} tokens ({expected} bytes): "
            "truncated or corrupt"
        )
    return header


def open_shard(path) -> np.ndarray:
    """Memory-map a shard's tokens (read-only uint16) after validating magic, version and file size."""
    header = read_header(path)
    if header[2] == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)  # mmap cannot map zero bytes
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(int(header[2]),))


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def shard_entry(file: str, split: str, tokens: int, documents: int, sha256: str) -> dict:
    """One shard's entry in the manifest; `documents` counts the documents whose end-of-text token is in it."""
    return {"file": file, "split": split, "tokens": int(tokens), "documents": int(documents), "sha256": sha256}


def shard_totals(shards: list[dict]) -> dict:
    totals = {"shards": len(shards), "documents": sum(s["documents"] for s in shards),
              "tokens": sum(s["tokens"] for s in shards)}
    for split in ("val", "train"):  # the folder's order
        for key in ("tokens", "documents"):
            totals[f"{split}_{key}"] = sum(s[key] for s in shards if s["split"] == split)
    return totals


def build_manifest(shards: list[dict], tokenizer: str, vocab_size: int, eot_token: int, **details) -> dict:
    """The manifest of a shard folder: the format, the tokenizer, the shards (`shard_entry`) and their totals, then
    `details` in the order given (how the folder was made: see `provenance` and pipeline/prepare.py)."""
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "tokenizer": tokenizer,
                "vocab_size": vocab_size, "eot_token": eot_token, "dtype": "uint16", "shards": shards,
                "totals": shard_totals(shards), **details}
    check_manifest(manifest, MANIFEST_NAME)
    return manifest


def provenance(command: str) -> dict:
    """The `command` that made a folder, the versions of the packages that shaped its bytes, and when."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for package in ("gptstack", "datatrove", "tiktoken", "numpy", "pyarrow"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {"command": command, "versions": versions,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def check_manifest(manifest, where) -> None:
    """Raise ShardError naming `where` unless `manifest` is one this code reads: every field a reader uses has its
    type and range, every shard entry names a plain file of the folder itself (no path, so never one outside it),
    once, and the totals are those of the entries. Readers then index it without further checks."""
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ShardError(f"{where}: not a {MANIFEST_FORMAT} manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ShardError(f"{where}: unsupported manifest version {short(manifest.get('version'))}")
    at = f"{where}: "
    field(manifest, "tokenizer", str, at, ShardError, max_length=4096)
    vocab_size = field(manifest, "vocab_size", int, at, ShardError, low=1, high=MAX_TOKEN_IDS)
    field(manifest, "eot_token", int, at, ShardError, low=0, high=vocab_size - 1)
    if field(manifest, "dtype", str, at, ShardError) != "uint16":
        raise ShardError(f"{where}: dtype is {short(manifest['dtype'])}; this code reads uint16 shards only")
    for key in ("tokenizer_sha256", "command", "created"):
        field(manifest, key, (str, type(None)), at, ShardError, default=None, max_length=1 << 16)
    skipped = field(manifest, "skipped", dict, at, ShardError, default={})
    for reason in skipped:
        field(skipped, reason, int, f"{at}skipped.", ShardError, low=0)
    shards = field(manifest, "shards", list, at, ShardError)
    if not shards:
        raise ShardError(f"{where}: lists no shard")
    seen = set()
    for number, entry in enumerate(shards):
        check_value(entry, dict, f"{at}shards[{number}]", ShardError)
        here = f"{at}shards[{number}]."
        name = field(entry, "file", str, here, ShardError, max_length=255)
        if Path(name).name != name or name in (".", "..") or any(c in name for c in "\\\0") or name[-4:] != ".bin":
            raise ShardError(f"{here}file {short(name)} is not the name of a .bin file inside the folder")
        if name in seen:
            raise ShardError(f"{here}file {name} is listed twice")
        seen.add(name)
        if field(entry, "split", str, here, ShardError) not in SPLITS:
            raise ShardError(f"{here}split is {short(entry['split'])}, not one of {', '.join(SPLITS)}")
        tokens = field(entry, "tokens", int, here, ShardError, low=0, high=MAX_SHARD_TOKENS)
        field(entry, "documents", int, here, ShardError, low=0, high=tokens)
        digest = field(entry, "sha256", str, here, ShardError)
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ShardError(f"{here}sha256 {short(digest)} is not a SHA-256 in hex")
    totals = field(manifest, "totals", dict, at, ShardError)
    for key, value in shard_totals(shards).items():
        if field(totals, key, int, f"{at}totals.", ShardError) != value:
            raise ShardError(f"{at}totals.{key} is {short(totals[key])}, but the shard entries add up to {value}")


def write_manifest(directory, manifest: dict) -> Path:
    """Write manifest.json atomically (it is the commit point of a shard folder)."""
    path = Path(directory) / MANIFEST_NAME
    atomic_write(path, json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(directory) -> dict:
    """Load and check `manifest.json` of a shard folder; raises ShardError naming the file."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        if not Path(directory).is_dir():
            raise ShardError(f"{directory}: no such shard folder")
        raise ShardError(f"{path}: missing; not a finished shard folder (run `python -m pipeline.prepare` first)")
    manifest = read_json(path, ShardError, "manifest", allow_nan=False)
    check_manifest(manifest, path)
    return manifest


def check_output_folder(folder: Path, tokenizer: str, unfinished_commit: bool, what: str = "--output") -> None:
    """Refuse a folder new shards must not go into: not a folder, shards of another tokenizer, or shard files
    without a manifest (unless `unfinished_commit`: our own run stopped while committing and may go on). Read-only;
    raises InputError naming `what`."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} {folder}: exists and is not a folder")
    if (folder / MANIFEST_NAME).exists():
        existing = read_manifest(folder)
        if existing.get("tokenizer") != tokenizer:
            raise InputError(f"{what} {folder}: holds shards of tokenizer {existing.get('tokenizer')!r}, not "
                             f"{tokenizer!r}; choose another folder, or add --force to replace them")
    elif any(folder.glob(SHARD_GLOB)) and not unfinished_commit:
        raise InputError(f"{what} {folder}: holds shard files but no {MANIFEST_NAME}; choose another folder, or add "
                         "--force to replace them")


def commit_shard_folder(folder: OutputFolder, staged: Path, manifest: dict,
                        companions: dict[str, Path | None]) -> None:
    """Move the manifest's shards from `staged` into the claimed `folder`, replace its companion folders (name -> the
    folder that takes its place, None: none) and write the manifest last.

    Only names the folder's owner may replace are removed or replaced (gptstack/output_folder.py): stale shards and
    companions an earlier run of ours wrote, never a user's file of the same name (refused before anything moves).
    The old manifest goes first, so a crash in this (short, rename-only) window leaves a folder that every reader
    refuses, never one whose manifest lists files of two different runs.
    """
    path = folder.path
    new_files = {entry["file"] for entry in manifest["shards"]}
    moved_in = {name for name, replacement in companions.items() if replacement is not None and replacement.exists()}
    foreign = sorted(name for name in {MANIFEST_NAME, *new_files, *companions}
                     if ((path / name).exists() or (path / name).is_symlink()) and not folder.owns(name))
    if foreign:
        raise InputError(f"--output {path}: holds {', '.join(foreign[:4])}, which pipeline.prepare did not write; "
                         "nothing was replaced (move them away, or use --force)")
    folder.record([MANIFEST_NAME, *new_files, *moved_in])  # before they are there: a crash leaves them ours
    (path / MANIFEST_NAME).unlink(missing_ok=True)
    for name in sorted(new_files):
        os.replace(staged / name, path / name)
    for stale in path.glob(SHARD_GLOB):  # shards of an earlier, larger run of ours
        if stale.name not in new_files and folder.owns(stale.name):
            stale.unlink()
    for name, replacement in companions.items():
        _remove(path / name)  # owned (checked above), or absent
        if name in moved_in:
            os.replace(replacement, path / name)
    write_manifest(path, manifest)


def _remove(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a folder tree; nothing if absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def shard_paths(directory, split: str) -> list[Path]:
    """The shard files of one split, in order, as listed by the folder's manifest."""
    return ShardFolder(directory).paths(split)


class ShardFolder:
    """A finished shard folder, opened once: its manifest read and checked here, and everything a reader asks of it
    (the loader's files, the token check, the checksums, the fingerprint a checkpoint records, the tokenizer)
    answered from that one manifest."""

    def __init__(self, directory):
        self.path = Path(directory)
        self.manifest = read_manifest(self.path)
        self._tokenizer: Tokenizer | None = None

    def __str__(self) -> str:
        return str(self.path)

    def entries(self, split: str | None = None) -> list[dict]:
        """The manifest's shard entries (of one split), in order."""
        if split is not None and split not in SPLITS:
            raise ShardError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return [entry for entry in self.manifest["shards"] if split is None or entry["split"] == split]

    def paths(self, split: str | None = None) -> list[Path]:
        return [self.path / entry["file"] for entry in self.entries(split)]

    def verify(self, progress: bool = True) -> None:
        """Every listed shard exists and matches its sha256 (catches corruption before training on it)."""
        from tqdm import tqdm

        for entry in tqdm(self.entries(), desc="verifying shards", unit="shard", leave=False, disable=not progress):
            path = self.path / entry["file"]
            if not path.exists() and not path.is_symlink():
                raise ShardError(f"{path}: listed in manifest.json but missing")
            read_header(path)  # a plain file of the folder (never a link out of it), its size as its header says
            if file_sha256(path) != entry["sha256"]:
                raise ShardError(f"{path}: sha256 differs from manifest.json (the shard is corrupt or was changed)")

    def fingerprint(self) -> str:
        """A digest of the shard list and checksums: which token stream a checkpoint belongs to."""
        shards = [(e["file"], e["sha256"], e["tokens"]) for e in self.entries()]
        return hashlib.sha256(repr(shards).encode()).hexdigest()[:16]

    def tokenizer_record(self) -> dict:
        """The manifest's tokenizer as a record like `Tokenizer.record()`: its name, vocabulary size, and for a
        trained tokenizer folder the sha256 prepare recorded (two folders of one name may hold different ones)."""
        recorded = self.manifest.get("tokenizer")
        record = dict(recorded) if isinstance(recorded, dict) else {"name": recorded,
                                                                     "sha256": self.manifest.get("tokenizer_sha256")}
        record.setdefault("vocab_size", self.manifest.get("vocab_size"))
        return record

    @property
    def tokenizer(self) -> Tokenizer:
        """The shards' Tokenizer: the folder's `tokenizer/` copy (verified), or the manifest's tiktoken name."""
        if self._tokenizer is None:
            self._tokenizer = shard_folder_tokenizer(self.path, self.manifest)
        return self._tokenizer
