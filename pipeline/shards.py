"""The token shard format, compatible with llm.c and modded-nanogpt.

A shard file is a 1024-byte header of 256 little-endian int32 followed by the tokens as little-endian uint16:

    header[0] = 20240520 (magic)   header[1] = 1 (version)   header[2] = number of tokens   header[3:] = 0

A shard folder holds `val_000000.bin`, `train_000001.bin`, `train_000002.bin`, ... and `manifest.json`, which is
written last: a folder without a manifest is not a finished output. Every file is written under a temporary name
in the same folder and renamed into place with `os.replace` once complete, so a reader never sees half a file.
"""
import hashlib
import json
import os
import uuid
from pathlib import Path
import numpy as np

from pipeline.errors import ShardError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "gptstack-shards"
MANIFEST_VERSION = 1
SPLITS = ("train", "val")


def shard_name(split: str, index: int) -> str:
    """`val_000000.bin`, `train_000001.bin`, ... (the index runs over the whole folder, val first)."""
    return f"{split}_{index:06d}.bin"


def make_header(num_tokens: int) -> np.ndarray:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, num_tokens
    return header


def _atomic_writer(path: Path):
    """An open binary temp file in the same folder as `path` (so os.replace stays on one filesystem)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    return open(tmp, "xb"), tmp  # unlike mkstemp, honours the umask (shards are readable by others)


def _commit(file, tmp: Path, path: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(tmp, path)


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
    file, tmp = _atomic_writer(path)
    try:
        parts = [make_header(num_tokens), *(np.ascontiguousarray(chunk, dtype=TOKEN_DTYPE) for chunk in chunks)]
        for part in parts:
            buffer = memoryview(part).cast("B")
            digest.update(buffer)
            file.write(buffer)
        _commit(file, tmp, path)
    except BaseException:
        file.close()
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def read_header(path) -> np.ndarray:
    """The validated 256-int32 header of a shard; raises ShardError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ShardError(f"{path}: cannot open shard ({e.strerror})") from None
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


def write_manifest(directory, manifest: dict) -> Path:
    """Write manifest.json atomically (it is the commit point of a shard folder)."""
    path = Path(directory) / MANIFEST_NAME
    file, tmp = _atomic_writer(path)
    try:
        file.write((json.dumps(manifest, indent=2) + "\n").encode())
        _commit(file, tmp, path)
    except BaseException:
        file.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_manifest(directory) -> dict:
    """Load and sanity-check `manifest.json` of a shard folder; raises ShardError naming the file."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        if not Path(directory).is_dir():
            raise ShardError(f"{directory}: no such shard folder")
        raise ShardError(f"{path}: missing; not a finished shard folder (run `python -m pipeline.prepare` first)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ShardError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ShardError(f"{path}: unsupported manifest version {manifest.get('version')}")
    for entry in manifest.get("shards", []):
        if not isinstance(entry, dict) or entry.get("split") not in SPLITS or "file" not in entry:
            raise ShardError(f"{path}: malformed shard entry {entry!r}")
    return manifest


def shard_paths(directory, split: str) -> list[Path]:
    """The shard files of one split, in order, as listed by the folder's manifest."""
    if split not in SPLITS:
        raise ShardError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    manifest = read_manifest(directory)
    return [Path(directory) / entry["file"] for entry in manifest["shards"] if entry["split"] == split]

