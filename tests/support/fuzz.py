"""Seeded random corruption of files and folders, and the loop that feeds each corrupt copy to a loader.

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
import resource
import shutil
import signal
import struct
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gptstack.errors import GPTStackError
from tests.support import REPO_ROOT

MAX_MESSAGE = 2000  # an error "line" longer than this quotes the input instead of naming what is wrong in it
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
            done.append(f"{list(path)} = {_short(new)}")
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


def _short(value: Any) -> str:
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


# ------------------------------------------------------------------------------------------------- the loop
class Hang(BaseException):
    """A case ran past its time limit (a BaseException, so `except Exception` in the code under test lets it by)."""


@dataclass
class Failure:
    seed: int
    mutation: str
    problem: str  # "Traceback: KeyError ..." / "hang" / "memory" / "not one line"
    where: str  # the innermost frame of the project's own code

    @property
    def family(self) -> tuple[str, str]:
        return self.problem.split(":")[0].split(" (")[0], self.where


def _project_frame(error: BaseException) -> str:
    """Where the project's own code raised it (the innermost frame outside tests/ and .venv/), as file:line."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(REPO_ROOT))
            and not any(part in f.filename for part in ("/tests/", "/.venv/"))]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    name = frame.filename
    name = str(Path(name).relative_to(REPO_ROOT)) if name.startswith(str(REPO_ROOT)) else name
    return f"{name}:{frame.lineno} ({frame.name})"


def _copies_of_secret(folder: Path) -> str | None:
    """A plain file in `folder` (not the secret itself, not over 1 MB) that holds the private file's text."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != "secret.txt" and path.stat().st_size < 2**20:
            if SECRET.encode() in path.read_bytes():
                return str(path.relative_to(folder))
    return None


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def fuzz_seeds(base: int, cases: int) -> list[int]:
    """The seeds to run: GPTSTACK_FUZZ_SEED (comma-separated) replays those only; else `cases` seeds from `base`
    (GPTSTACK_FUZZ_CASES overrides how many)."""
    if os.environ.get("GPTSTACK_FUZZ_SEED"):
        return [int(s) for s in os.environ["GPTSTACK_FUZZ_SEED"].split(",")]
    return list(range(base, base + int(os.environ.get("GPTSTACK_FUZZ_CASES", cases))))


def reaches_checks(outcomes: dict[str, int], outcome: str, seeds: list[int]) -> bool:
    """At least a third of the cases ended in `outcome` ("refused": the mutations reach the loader's checks; a
    fuzzer whose mutants all load proves nothing); always true when replaying chosen seeds."""
    return bool(os.environ.get("GPTSTACK_FUZZ_SEED")) or outcomes.get(outcome, 0) >= len(seeds) // 3


def run_fuzz(name: str, seeds: list[int], template: Path, mutate: Callable[[random.Random, Path], str],
             use: Callable[[Path], Any], work: Path, seconds_per_case: float = 10.0,
             memory_headroom: int = 2**30, address_headroom: int = 4 * 2**30) -> dict[str, int]:
    """For each seed: copy `template` to a fresh folder, corrupt it with `mutate(rng, folder)` (which says what it
    did), and `use(folder)` it under a time limit; memory is bounded twice: the peak resident memory may grow by
    `memory_headroom` at most (measured), and the address space is capped at what the process has now plus
    `address_headroom` (so a runaway allocation fails fast instead of taking the machine; it is larger, as a
    memory-mapped file takes address space without memory). Raises AssertionError listing every case that ended in
    anything but success or a one-line GPTStackError, grouped by family (exception and the project frame that
    raised it). Returns how many were accepted and refused."""
    failures: list[Failure] = []
    outcomes: dict[str, int] = defaultdict(int)

    def on_alarm(signum, frame):
        raise Hang()

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        for seed in seeds:
            rng = random.Random(seed)
            folder = work / f"{name}-{seed}"
            shutil.copytree(template, folder, symlinks=True)
            try:
                mutation = mutate(rng, folder)
            except Exception as e:  # the test's own mutator broke: report it, it is not the loader's failure
                raise AssertionError(f"{name} seed {seed}: the mutator failed: {e!r}") from e
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + address_headroom, hard))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            signal.setitimer(signal.ITIMER_REAL, seconds_per_case)
            start, hung = time.monotonic(), False
            try:
                use(folder)
                outcomes["accepted"] += 1
            except GPTStackError as e:
                message = str(e)
                if "\n" in message or not message.strip() or len(message) > MAX_MESSAGE:
                    failures.append(Failure(seed, mutation, f"not one line ({len(message)} chars): "
                                                            f"{_short(message)}", _project_frame(e)))
                outcomes["refused"] += 1
            except Hang:
                hung = True
                failures.append(Failure(seed, mutation, f"hang (over {seconds_per_case:.0f} s)", "?"))
            except MemoryError as e:
                failures.append(Failure(seed, mutation, "memory (past the address-space limit)", _project_frame(e)))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # a Rust panic (pyo3's PanicException) is a BaseException
                failures.append(Failure(seed, mutation, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}",
                                        _project_frame(e)))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            if not hung and time.monotonic() - start > seconds_per_case:  # a slow C call the alarm could not interrupt
                failures.append(Failure(seed, mutation, f"hang ({time.monotonic() - start:.1f} s)", "?"))
            leaked = _copies_of_secret(folder)
            if leaked:
                failures.append(Failure(seed, mutation, f"leak: the linked private file was copied to {leaked}", "?"))
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
            if grown > memory_headroom:
                failures.append(Failure(seed, mutation, f"memory (peak grew by {grown / 2**20:,.0f} MiB)", "?"))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if failures:
        raise AssertionError(failure_report(name, failures))
    return dict(outcomes)


def failure_report(name: str, failures: list[Failure]) -> str:
    families: dict[tuple, list[Failure]] = defaultdict(list)
    for failure in failures:
        families[failure.family].append(failure)
    lines = [f"{name}: {len(failures)} case(s) ended in neither success nor one GPTStackError line, "
             f"in {len(families)} famil{'y' if len(families) == 1 else 'ies'}:"]
    for (problem, where), members in families.items():
        lines.append(f"- {problem} at {where}: {len(members)} case(s)")
        for failure in members[:3]:
            lines.append(f"    seed {failure.seed}: {failure.mutation} -> {failure.problem}")
    seeds = ",".join(str(f.seed) for f in failures[:20])
    lines.append(f"replay: GPTSTACK_FUZZ_SEED={seeds} python -m pytest -q <this test>")
    return "\n".join(lines)
