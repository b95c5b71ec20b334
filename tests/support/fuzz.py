"""Seeded random corruption of files and folders (the loop that feeds each corrupt copy to a loader is
tests/support/fuzz_loop.py).

The fuzz tests (tests/unit/fuzz/, tests/integration/fuzz/) hold one promise for every format we read (issue 22,
deliverable 6): a corrupt input is accepted, or refused with one GPTStackError line; never another exception (a
traceback), a hang, or unbounded memory. Each case is made from its own seed alone (`random.Random(seed)`), so a
failure names its seed and mutation and replays by itself:

    GPTSTACK_FUZZ_SEED=1234 python -m pytest -q tests/unit/fuzz/test_manifest.py
    GPTSTACK_FUZZ_CASES=5000 ...   (more cases than CI runs, for a longer hunt)

The mutators here know nothing about any format: bytes (truncation, flipped bits, hostile integers), JSON (wrong
types, missing and unknown keys, huge numbers, NaN, deep nesting, lone surrogates) and folder entries (symlinks to
/dev/zero or outside, FIFOs, folders, huge sparse files). tests/support/fuzz_pipeline.py, fuzz_model.py and
fuzz_warc.py aim them at each format.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import struct
from pathlib import Path
from typing import Any

SECRET = "private: not for any shard or checkpoint"  # a linked private file's text, which must not be copied


# ------------------------------------------------------------------------------------------------------ bytes
INTERESTING_32 = (0, 1, -1, 2**31 - 1, -2**31, 2**30, 255, 256, 1024, 20240520, 65535, 65536)
INTERESTING_64 = (0, 1, 2**63 - 1, 2**64 - 1, 2**32, 2**40, 100_000_001, 8)


def mutate_bytes(rng: random.Random, data: bytes, hot: tuple[int, int] | None = None) -> tuple[bytes, str]:
    """One random corruption of `data`; with `hot` (start, end), positions fall there two times in three (a header,
    where a format's structure is)."""
    def position(extra: int = 0) -> int:
        if hot and rng.random() < 2 / 3 and hot[1] > hot[0]:
            return rng.randrange(hot[0], min(hot[1], len(data)) + extra) if min(hot[1], len(data)) > hot[0] else 0
        return rng.randrange(len(data) + extra) if len(data) + extra else 0

    op = rng.choice(("truncate", "flip", "overwrite", "insert", "delete", "duplicate", "int32", "int64", "empty",
                     "append"))
    data = bytearray(data)
    if op == "empty" or not data:
        return b"", "emptied"
    if op == "truncate":
        at = position()
        return bytes(data[:at]), f"truncated to {at} of {len(data)} bytes"
    if op == "flip":
        places = [position() for _ in range(rng.randint(1, 8))]
        for at in places:
            data[at] ^= 1 << rng.randrange(8)
        return bytes(data), f"bits flipped at {places}"
    if op == "overwrite":
        at, size = position(), rng.randint(1, 16)
        fill = rng.choice((b"\x00", b"\xff", b"\x7f", b"\x80", bytes([rng.randrange(256)])))
        data[at:at + size] = fill * size
        return bytes(data), f"{size} bytes at {at} set to {fill!r}"
    if op == "insert":
        at, junk = position(1), rng.randbytes(rng.randint(1, 64))
        data[at:at] = junk
        return bytes(data), f"{len(junk)} random bytes inserted at {at}"
    if op == "delete":
        at, size = position(), rng.randint(1, 256)
        del data[at:at + size]
        return bytes(data), f"{size} bytes deleted at {at}"
    if op == "duplicate":
        at, size = position(), rng.randint(1, 512)
        data[at:at] = data[at:at + size]
        return bytes(data), f"{size} bytes at {at} repeated"
    if op in ("int32", "int64"):
        fmt, values = ("<i", INTERESTING_32) if op == "int32" else ("<Q", INTERESTING_64)
        width = struct.calcsize(fmt)
        at = position() // width * width
        value = rng.choice(values)
        data[at:at + width] = struct.pack(fmt, value)
        return bytes(data), f"{op} {value} written at {at}"
    junk = rng.choice((rng.randbytes(rng.randint(1, 300)), bytes(data[:rng.randint(1, 300)])))
    return bytes(data) + junk, f"{len(junk)} bytes appended"


# ------------------------------------------------------------------------------------------------------- JSON
class Raw:
    """JSON text put in a document as it is: what json.dumps cannot or will not write."""

    def __init__(self, text: str, label: str):
        self.text, self.label = text, label

    def __repr__(self) -> str:
        return self.label


HOSTILE = (None, True, False, 0, -1, 1, 3, 2**31, 2**53 + 1, 2**63, 2**64, -2**63, 10**30, 0.5, 1.5, -0.0, 1e308,
           -1e308, 5e-324, float("nan"), float("inf"), float("-inf"), "", "x", "104", "true", "null", "gpt2",
           "../outside.bin", "/etc/passwd", "a\nb", "\u0000", "\u202e", "é" * 3, "x" * 70_000, [], [1, "a", None],
           {}, {"a": None})
RAW_HOSTILE = (Raw("[" * 100_000 + "]" * 100_000, "[100,000 nested lists]"),
               Raw('{"a":' * 50_000 + "1" + "}" * 50_000, "{50,000 nested objects}"),
               Raw("1" + "0" * 5000, "10**5000"), Raw("-" + "9" * 4000, "-(10**4000 - 1)"), Raw("1e999", "1e999"),
               Raw("-1e999", "-1e999"), Raw('"\\ud800"', "a lone surrogate"), Raw("NaN", "NaN"),
               Raw("Infinity", "Infinity"), Raw("1.0", "1.0"), Raw('"\\u0000"', "a NUL string"))


def json_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """The path (keys and indexes) of every value inside `value`, itself included (lists sampled past 20 items)."""
    paths = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            paths += json_paths(inner, path + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:20]):
            paths += json_paths(inner, path + (index,))
    return paths


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(document: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _get(document, path[:-1])[path[-1]] = new
    return document


def _neighbour(rng: random.Random, value: Any) -> Any:
    """A plausible wrong value: a number off by a little or a lot, a number as text, a string cut or grown."""
    if isinstance(value, bool):
        return rng.choice((not value, int(value), str(value).lower()))
    if isinstance(value, int):
        return rng.choice((value + 1, value - 1, -value, value * 2, value // 2, 0, str(value), float(value),
                           value + 2**32, 2**rng.randrange(8, 70)))
    if isinstance(value, float):
        return rng.choice((-value, value * 1e6, value / 1e6, int(value) if math.isfinite(value) else 0, str(value),
                           0.0))
    if isinstance(value, str):
        return rng.choice((value[:len(value) // 2], value + "x", value.upper(), value * 3, value[::-1],
                           int(value) if value.isdigit() else len(value)))
    if isinstance(value, list):
        return rng.choice((value[:-1], value + value[-1:], value[::-1], [value]))
    if isinstance(value, dict):
        return rng.choice((dict(list(value.items())[:-1]), [value], list(value)))
    return value


def mutate_json(rng: random.Random, document: Any) -> tuple[str, str]:
    """1 to 3 random corruptions of a JSON document; the text to write and what was done."""
    document = json.loads(json.dumps(document))
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = json_paths(document)
        path = rng.choice(paths)
        target = _get(document, path)
        containers = [p for p in paths if isinstance(_get(document, p), dict) and _get(document, p)]
        op = rng.choice(("hostile", "hostile", "raw", "neighbour", "neighbour", "delete", "add", "rename", "wrap"))
        if op in ("delete", "rename") and containers:
            where = rng.choice(containers)
            inner = _get(document, where)
            key = rng.choice(list(inner))
            value = inner.pop(key)
            if op == "rename":
                inner[rng.choice((key + "x", key.upper(), "", " " + key))] = value
            done.append(f"{op} {list(where + (key,))}")
        elif op == "add" and containers:
            where = rng.choice(containers)
            _get(document, where)[rng.choice(("extra", "__proto__", "format", "x" * 300))] = rng.choice(HOSTILE[:20])
            done.append(f"add a key to {list(where)}")
        elif op == "wrap":
            document = _set(document, path, rng.choice(([target], {"value": target})))
            done.append(f"wrap {list(path)}")
        elif op == "raw":
            raw = rng.choice(RAW_HOSTILE)
            document = _set(document, path, raw)
            done.append(f"{list(path)} = {raw!r}")
        else:
            new = _neighbour(rng, target) if op == "neighbour" else rng.choice(HOSTILE)
            document = _set(document, path, new)
            done.append(f"{list(path)} = {short_repr(new)}")
    return dumps_with_raw(document), "; ".join(done)


def dumps_with_raw(document: Any) -> str:
    """json.dumps, with every `Raw` inside written as its text (NaN and Infinity as Python writes them)."""
    raws: list[Raw] = []

    def placeholder(value):
        if isinstance(value, Raw):
            raws.append(value)
            return f"@@raw{len(raws) - 1}@@"
        raise TypeError(type(value))

    text = json.dumps(document, default=placeholder, indent=1)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', raw.text, 1)
    return text


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 50 else text[:47] + "..."


# ------------------------------------------------------------------------------------------- folder entries
ENTRY_KINDS = ("link to /dev/zero", "link to /dev/urandom", "link to a private file outside", "dangling link",
               "link loop", "link to a folder", "folder", "folder holding a file", "FIFO", "missing",
               "sparse 3 GiB file", "link to a copy outside")


def mutate_entry(rng: random.Random, path: Path, outside: Path, kinds: tuple[str, ...] = ENTRY_KINDS) -> str:
    """Replace the file or folder `path` by another kind of entry; `outside` is a folder beside the one under test
    (where private files and copies go). Returns what `path` now is."""
    kind = rng.choice(kinds)
    outside.mkdir(parents=True, exist_ok=True)
    original = None
    if path.is_file() and not path.is_symlink():
        original = path.read_bytes()
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "link to /dev/urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "link to a private file outside":
        secret = outside / "secret.txt"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        path.symlink_to(secret)
    elif kind == "dangling link":
        path.symlink_to(outside / "nothing-here")
    elif kind == "link loop":
        path.symlink_to(path.name)
    elif kind == "link to a folder":
        path.symlink_to(outside)
    elif kind == "folder":
        path.mkdir()
    elif kind == "folder holding a file":
        path.mkdir()
        (path / "inner.txt").write_text("inner\n")
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "sparse 3 GiB file":
        with open(path, "wb") as file:
            if original:
                file.write(original)  # the real start, then 3 GiB of holes: everything is read, or nothing
            file.truncate(3 * 2**30)
    elif kind == "link to a copy outside":
        copy = outside / f"copy-of-{path.name}"
        if original is not None:
            copy.write_bytes(original)
        else:
            copy.mkdir(exist_ok=True)
        path.symlink_to(copy)
    return f"{path.name} is a {kind}" if kind != "missing" else f"{path.name} is missing"
