"""Adopt a folder of llm.c / modded-nanogpt shards: `python -m pipeline.adopt DIR` (or `gptstack adopt DIR`).

Their shards are ours byte for byte (pipeline/shards.py: the 256-int32 header with magic 20240520, version 1, then
uint16 tokens), but they come without manifest.json, so `pipeline.inspect` and the trainer refuse them. This
command reads every `*.bin` of DIR once: it checks each header against the file's size, counts the tokens and the
end-of-text tokens, checks that every id fits the tokenizer, hashes the file, and then writes the manifest (the
same `build_manifest`/`write_manifest` that `pipeline.prepare` uses; written atomically and last). The shard files
are left as they are, under their own names, so llm.c still reads the folder. A `--tokenizer` folder is pinned as
prepare pins it: its sha256 goes into the manifest and a copy into DIR/tokenizer/, which is what inspect and the
trainer then read (verified against that sha256), so moving, changing or swapping the original changes nothing.

The split comes from the file name: `fineweb_val_000000.bin` is validation, `fineweb_train_000001.bin` training
(a name must hold `val` or `train` as a word). Nothing is written when any file is wrong: one `error:` line names
it, exit code 2.
"""
import argparse
import hashlib
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, InputError, ShardError, exit_with_error
from gptstack.files import check_writable_dir
from pipeline.shards import (HEADER_BYTES, MANIFEST_NAME, TOKEN_DTYPE, build_manifest, provenance, read_header,
                             shard_entry, write_manifest)
from pipeline.tokenizer import COPY_DIR, Tokenizer, get_tokenizer
from pipeline.tokenizer.folder import load_tokenizer_folder

BLOCK_BYTES = 1 << 24  # read 16 MiB at a time: one pass for hash, id range and end-of-text count
SPLIT_WORDS = {"val": "val", "valid": "val", "validation": "val", "train": "train"}
EXAMPLES = """examples:
  python -m pipeline.adopt data/fineweb10B              # modded-nanogpt's cached_fineweb10B.py download
  python -m pipeline.adopt dev/data/edu_fineweb10B      # llm.c's dev/data/fineweb.py output
  gptstack adopt data/tinyshakespeare --tokenizer gpt2
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m pipeline.adopt", description=__doc__.split("\n\n")[0], epilog=EXAMPLES)
    parser.add_argument("directory", metavar="DIR", type=Path, help="folder of *.bin shards without manifest.json")
    parser.add_argument("--tokenizer", default="gpt2",
                        help="the tokenizer the shards were written with (default: gpt2, as llm.c and "
                             "modded-nanogpt write)")
    return parser.parse_args(argv)


def split_of(name: str) -> str:
    """`val` or `train` from a shard's file name (`fineweb_val_000000.bin`, `tiny_shakespeare_train.bin`)."""
    words = {SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", Path(name).stem.lower()) if w in SPLIT_WORDS}
    if len(words) != 1:
        raise InputError(f"{name}: cannot tell its split from the name (expected 'train' or 'val' as a word in "
                         "it, e.g. fineweb_train_000001.bin); rename it")
    return words.pop()


def scan_shard(path: Path, eot_token: int, vocab_size: int) -> dict:
    """Check one shard and return its manifest entry (documents = end-of-text tokens in it)."""
    header = read_header(path)  # magic, version and size against the announced token count; ShardError names it
    digest, documents, largest = hashlib.sha256(), 0, -1
    with open(path, "rb") as file:
        head = file.read(HEADER_BYTES)
        digest.update(head)
        while block := file.read(BLOCK_BYTES):  # an even size: tokens never straddle two blocks
            digest.update(block)
            tokens = np.frombuffer(block, dtype=TOKEN_DTYPE)
            if tokens.size:
                documents += int(np.count_nonzero(tokens == eot_token))
                largest = max(largest, int(tokens.max()))
    if largest >= vocab_size:
        raise ShardError(f"{path}: holds token id {largest}, outside the tokenizer's {vocab_size:,} ids: written "
                         "with another tokenizer? (--tokenizer)")
    return shard_entry(path.name, split_of(path.name), int(header[2]), documents, digest.hexdigest())


def check_copy_place(directory: Path, tokenizer: Tokenizer) -> None:
    """DIR/tokenizer/ is where the copy goes: refuse to replace anything there but an earlier copy of this one."""
    place = directory / COPY_DIR
    if not place.exists() and not place.is_symlink():
        return
    try:
        ours = place.is_dir() and not place.is_symlink() and load_tokenizer_folder(place).sha256 == tokenizer.sha256
    except GPTStackError:
        ours = False
    if not ours:
        raise InputError(f"{place}: already there and not a copy of --tokenizer {tokenizer.label}; adopt keeps the "
                         f"tokenizer's copy there: move it away first")


def adopt(directory: Path, tokenizer: str = "gpt2", command: str = "") -> dict:
    """Write DIR/manifest.json for the llm.c-format shards in DIR and return it."""
    if not directory.is_dir():
        raise InputError(f"{directory}: no such folder")
    if (directory / MANIFEST_NAME).exists():
        raise InputError(f"{directory / MANIFEST_NAME}: already there; this folder needs no adopting "
                         f"(`python -m pipeline.inspect {directory}` checks it)")
    paths = sorted(directory.glob("*.bin"))
    if not paths:
        raise InputError(f"{directory}: holds no *.bin shard files")
    for path in paths:  # names first: a misnamed file fails at once, before hours of hashing
        split_of(path.name)
    check_writable_dir(directory, "DIR", InputError)  # the manifest goes there: know it before reading everything
    resolved = get_tokenizer(tokenizer)
    if resolved.folder:
        check_copy_place(directory, resolved)
    encoding = resolved.encoding
    entries = [scan_shard(path, encoding.eot_token, encoding.n_vocab) for path in paths]
    # The folder's order is val first, then train, each by name (as pipeline.prepare writes them).
    entries.sort(key=lambda e: (e["split"] != "val", e["file"]))
    if not any(e["split"] == "train" for e in entries):
        raise InputError(f"{directory}: no training shard (no file name with 'train' in it)")
    pinned = {}
    if resolved.folder:  # the copy first, the manifest that names it last (the manifest makes the folder usable)
        resolved.copy_into(directory)
        pinned = {"tokenizer_source": resolved.label, "tokenizer_sha256": resolved.sha256, "tokenizer_files": COPY_DIR}
    manifest = build_manifest(entries, resolved.label, encoding.n_vocab, encoding.eot_token, skipped={},
                              adopted={"from": "llm.c/modded-nanogpt shards", "documents": "end-of-text tokens"},
                              **pinned, **provenance(command))
    write_manifest(directory, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        manifest = adopt(args.directory, args.tokenizer, "python -m pipeline.adopt " + shlex.join(argv))
    except GPTStackError as error:
        exit_with_error(error)
    totals = manifest["totals"]
    print(f"adopted {args.directory}/: {totals['shards']} shards, {totals['train_tokens']:,} train and "
          f"{totals['val_tokens']:,} val tokens ({manifest['tokenizer']}); wrote {MANIFEST_NAME}")
    print(f"  next: python -m model.train --config tiny-cpu --data {args.directory}")


if __name__ == "__main__":
    main()
