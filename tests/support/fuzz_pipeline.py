"""Valid tokenizer and shard folders for the fuzz tests, built by the project's own writers, and their mutators.

    build_tokenizer(dest)            a tokenizer folder trained by pipeline.tokenizer.train (vocab 512, ~1 s)
    build_shard_folder(dest, tok)    val + 2 train shards of real text and manifest.json, with tokenizer/ beside

Each `mutate_*(rng, root)` corrupts one copy of that material inside `root` and says what it did; each `use_*`
reads it as the project's consumers do. The unit fuzzers (tests/unit/fuzz/) and the end-to-end ones
(tests/integration/fuzz/) share them, so a case found by one replays in the other.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import struct
from pathlib import Path

import numpy as np

from tests.support.fuzz import mutate_bytes, mutate_entry, mutate_json

TOKENIZER_FILES = ("gptstack_tokenizer.json", "tokenizer.tiktoken", "tokenizer.json", "tokenizer_config.json")
PROBE = "Fuzzing 中文分词：我们今天去公园。 naïve café 😀 \t\n 3.14 <|endoftext|> \x00"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_texts(limit_chars: int = 300_000) -> list[str]:
    from pipeline.read.corpora import sample_corpus_path

    texts, total = [], 0
    for entry in json.loads(sample_corpus_path().read_text()).values():
        if entry.get("extract"):
            texts.append(entry["extract"])
            total += len(entry["extract"])
            if total > limit_chars:
                break
    return texts + ["中文分词器：我们今天去公园。北京是中国的首都。"] * 20


# --------------------------------------------------------------------------------------------------- tokenizer
def build_tokenizer(dest: Path) -> Path:
    from pipeline.tokenizer.train import TrainSettings, train_tokenizer

    return train_tokenizer(training_texts(), TrainSettings(vocab_size=512), dest, "fuzz", progress=False).path


RANK_LINE_OPS = ("delete", "duplicate", "rank", "token", "swap", "append", "blank", "fields")


def _mutate_rank_lines(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.splitlines()
    op, at = rng.choice(RANK_LINE_OPS), rng.randrange(len(lines))
    if op == "delete":
        del lines[at]  # a missing byte token when at < 256
    elif op == "duplicate":
        lines.insert(rng.randrange(len(lines)), lines[at])
    elif op == "rank":
        token = lines[at].split()[0]
        lines[at] = f"{token} {rng.choice(('-1', '65536', '99999999999999999999', 'x', '1.5', '', '0x10', '٣'))}"
    elif op == "token":
        rank = lines[at].split()[1]
        lines[at] = f"{rng.choice(('', '!!!', 'AA=', '====', 'QUFB' * 5000, '8J+YgA==', 'AAAA'))} {rank}"
    elif op == "swap":
        other = rng.randrange(len(lines))
        (a, ra), (b, rb) = lines[at].split(), lines[other].split()
        lines[at], lines[other] = f"{a} {rb}", f"{b} {ra}"
    elif op == "append":
        lines += [f"{rng.randbytes(rng.randint(2, 9)).hex()} {len(lines) + i}" for i in range(rng.randint(1, 70_000))]
    elif op == "blank":
        lines.insert(at, rng.choice(("", " ", "\t", "\r")))
    else:
        lines[at] += rng.choice((" extra", " 1 2", "\x00"))
    return "\n".join(lines) + "\n", f"ranks line {at + 1}: {op}"


PATTERNS = ("", "(", "a*", ".", "x?", "\\s", "[\\s\\S]", "\\p{L}+", "(a+)+$", "(?i)", "\\d+|\\D+", "(?<=a)b", ")",
            "[", "\\", "." * 5000, "(?:" * 300 + ")" * 300, "\\p{Nope}", "[^\\s]+|\\s+", "\\X")


def mutate_tokenizer(rng: random.Random, root: Path, folder_name: str = "tok") -> str:
    """Corrupt root/tok: its metadata (as JSON, or its split pattern), a data file (bytes or ranks lines, then
    re-hashed into the metadata so the deeper checks are reached), or what kind of entry a file is."""
    folder = root / folder_name
    meta_path = folder / TOKENIZER_FILES[0]
    meta = json.loads(meta_path.read_text())
    choice = rng.random()
    if choice < 0.3:
        text, what = mutate_json(rng, meta)
        meta_path.write_text(text)
        return f"metadata: {what}"
    if choice < 0.4:
        meta["pattern"] = rng.choice(PATTERNS)
        meta_path.write_text(json.dumps(meta))
        return f"pattern = {meta['pattern'][:40]!r}"
    if choice < 0.75:
        name = rng.choice(TOKENIZER_FILES[1:2] * 4 + TOKENIZER_FILES[2:])
        path = folder / name
        if name == TOKENIZER_FILES[1] and rng.random() < 0.6:
            new, what = _mutate_rank_lines(rng, path.read_text())
            path.write_text(new)
        elif name == "tokenizer_config.json" and rng.random() < 0.6:
            new, what = mutate_json(rng, json.loads(path.read_text()))
            path.write_text(new)
        else:
            new_bytes, what = mutate_bytes(rng, path.read_bytes())
            path.write_bytes(new_bytes)
        rehash = rng.random() < 0.85
        if rehash:  # a consistent forgery: the metadata names the corrupt file's sha256
            meta["files"][name] = sha256(path)
            meta_path.write_text(json.dumps(meta))
        return f"{name}: {what}{', re-hashed' if rehash else ''}"
    if choice < 0.92:
        name = rng.choice(TOKENIZER_FILES)
        return mutate_entry(rng, folder / name, root / "outside")
    extra = folder / rng.choice(("extra", "sub", ".hidden"))
    extra.write_text("x")
    return f"beside the files: {mutate_entry(rng, extra, root / 'outside')}"


def use_tokenizer(folder: Path) -> None:
    """Load, then use as every consumer does: encode and decode text (it must come back whole), copy the folder."""
    from pipeline.tokenizer.folder import load_tokenizer_folder
    from pipeline.tokenizer.tokenizer import Tokenizer

    loaded = load_tokenizer_folder(folder)
    encoding = loaded.encoding()
    ids = encoding.encode_ordinary(PROBE)
    assert encoding.decode(ids) == PROBE, "a loaded tokenizer does not give the text back"
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [loaded.eot_token]
    Tokenizer(str(folder), loaded).copy_into(folder.parent / "copied")


# ------------------------------------------------------------------------------------------------ shard folder
def build_shard_folder(dest: Path, tokenizer_folder: Path) -> Path:
    from pipeline.shards import build_manifest, shard_entry, shard_name, write_manifest, write_shard
    from pipeline.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(str(tokenizer_folder))
    dest.mkdir(parents=True)
    documents = [tokenizer.encode(text) + [tokenizer.eot_token] for text in training_texts(60_000)]
    parts = [documents[:5], documents[5:len(documents) // 2], documents[len(documents) // 2:]]
    entries = []
    for index, (split, part) in enumerate(zip(("val", "train", "train"), parts)):
        tokens = np.array([t for doc in part for t in doc], dtype=np.uint16)
        name = shard_name(split, index)
        entries.append(shard_entry(name, split, len(tokens), len(part), write_shard(dest / name, tokens)))
    tokenizer.copy_into(dest)
    manifest = build_manifest(entries, tokenizer.label, tokenizer.vocab_size, tokenizer.eot_token,
                              tokenizer_source="fuzz", tokenizer_sha256=tokenizer.sha256, tokenizer_files="tokenizer",
                              skipped={"bad_json": 1}, command="python -m pipeline.prepare --corpus local",
                              created="2026-01-01T00:00:00+00:00")
    write_manifest(dest, manifest)
    return dest


def _rewrite_manifest(folder: Path, change) -> None:
    from pipeline.shards import shard_totals

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    manifest["totals"] = shard_totals(manifest["shards"])
    path.write_text(json.dumps(manifest, indent=2))


def mutate_manifest(rng: random.Random, root: Path, folder_name: str = "shards") -> str:
    """Corrupt root/shards/manifest.json (as JSON or as bytes, or what kind of entry it is), or its tokenizer/."""
    folder = root / folder_name
    path = folder / "manifest.json"
    choice = rng.random()
    if choice < 0.6:
        text, what = mutate_json(rng, json.loads(path.read_text()))
        path.write_text(text)
        return f"manifest: {what}"
    if choice < 0.72:
        manifest = json.loads(path.read_text())
        entry = rng.choice(manifest["shards"])
        new = rng.choice(("../outside.bin", "/etc/passwd", "tokenizer", "manifest.json", "val_000000.bin",
                          "nothere_000009.bin", "sub/train_000001.bin", ".", "", "x.bin\x00", "a\\b.bin"))
        entry["file"] = new
        _rewrite_manifest(folder, lambda m: m.update(shards=manifest["shards"]))
        return f"a shard entry's file = {new!r} (totals kept consistent)"
    if choice < 0.8:
        new_bytes, what = mutate_bytes(rng, path.read_bytes())
        path.write_bytes(new_bytes)
        return f"manifest bytes: {what}"
    if choice < 0.88:
        return mutate_entry(rng, path, root / "outside")
    if choice < 0.94:
        return f"tokenizer copy: {mutate_entry(rng, folder / 'tokenizer', root / 'outside')}"
    # no copy: the manifest's tokenizer name is what the folder is decoded with (offline names and paths only)
    shutil.rmtree(folder / "tokenizer")
    name = rng.choice(("gpt2", "nope", "", "/etc", "../tok", str(folder), "tokenizer", "a" * 300))
    sha = rng.choice((None, "0" * 64))

    def rename(manifest):
        manifest.update(tokenizer=name, tokenizer_sha256=sha)
    _rewrite_manifest(folder, rename)
    return f"no tokenizer copy; manifest names tokenizer {name[:40]!r} with sha256 {sha and sha[:4]}"


def mutate_shards(rng: random.Random, root: Path, folder_name: str = "shards") -> str:
    """Corrupt a shard of root/shards: its bytes (mostly the 1024-byte header), its token ids, or what kind of entry
    it is; the manifest's sha256 (and token count) re-written to match in most cases, so the checks past the
    checksum are reached."""
    folder = root / folder_name
    names = sorted(p.name for p in folder.glob("*.bin"))
    name = rng.choice(names)
    path = folder / name
    choice = rng.random()
    if choice < 0.55:
        new_bytes, what = mutate_bytes(rng, path.read_bytes(), hot=(0, 1024))
        path.write_bytes(new_bytes)
    elif choice < 0.8:
        data = bytearray(path.read_bytes())
        places = [rng.randrange(1024, len(data) - 1) // 2 * 2 for _ in range(rng.randint(1, 5))]
        value = rng.choice((511, 512, 1000, 65535, 0, 60000))
        for at in places:
            data[at:at + 2] = struct.pack("<H", value)
        path.write_bytes(bytes(data))
        what = f"token id {value} at {len(places)} places"
    else:
        return f"{name}: {mutate_entry(rng, path, root / 'outside')}"
    if rng.random() < 0.8 and path.is_file():
        count = (path.stat().st_size - 1024) // 2 if rng.random() < 0.5 else None

        def match(manifest):
            for entry in manifest["shards"]:
                if entry["file"] == name:
                    entry["sha256"] = sha256(path)
                    if count is not None and count >= 0:
                        entry["tokens"], entry["documents"] = count, min(entry["documents"], count)
        _rewrite_manifest(folder, match)
        what += ", manifest re-hashed" + (" and re-counted" if count is not None else "")
    return f"{name}: {what}"


def use_shard_folder(folder: Path) -> None:
    """What reads a shard folder: the checked folder, inspect (with and without --no-verify), the training loader."""
    from contextlib import redirect_stdout

    from model.data.batches import TokenBatches
    from pipeline.inspect import inspect, parse_args
    from pipeline.shards import ShardFolder

    each(lambda: _quiet(redirect_stdout, lambda: inspect(parse_args([str(folder), "--no-verify"]))),
         lambda: _quiet(redirect_stdout, lambda: inspect(parse_args([str(folder), "--tokens", "50"]))))
    shards = ShardFolder(folder)
    shards.fingerprint()
    shards.tokenizer_record()
    shards.verify(progress=False)
    shards.tokenizer.decode(list(range(10)))
    batches = TokenBatches(shards, "train", batch_size=2, seq_len=16, shuffle=True)
    for _ in range(3):
        batches.next_batch()


def _quiet(redirect, action) -> None:
    with redirect(io.StringIO()):
        action()


def each(*actions) -> None:
    """Run every action; a GPTStackError of one (one line, checked here) does not stop the next. Anything else
    propagates to the fuzz loop."""
    from gptstack.errors import GPTStackError

    for action in actions:
        try:
            action()
        except GPTStackError as e:
            assert "\n" not in str(e) and str(e).strip(), f"a GPTStackError that is not one line: {str(e)[:200]!r}"
