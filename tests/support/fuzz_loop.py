"""The loop that feeds corrupt copies to a loader and holds the fuzz tests' promise (see tests/support/fuzz.py):
success or one GPTStackError line; never another exception, a hang, unbounded memory, or a linked private file
copied. Each case runs alone from its seed; a failure report groups the cases by family and names their seeds.
"""
from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gptstack.errors import GPTStackError
from tests.support import REPO_ROOT
from tests.support.fuzz import SECRET, short_repr

MAX_MESSAGE = 2000  # an error "line" longer than this quotes the input instead of naming what is wrong in it


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


def template(tmp_path: Path, **parts: Path) -> Path:
    """A folder holding copies of `parts` under their keyword names: what each fuzz case starts from."""
    folder = tmp_path / "template"
    folder.mkdir()
    for name, source in parts.items():
        shutil.copytree(source, folder / name, symlinks=True)
    return folder


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
    armed = [False]

    def on_alarm(signum, frame):
        if armed[0]:  # disarmed the moment the case ends: a late alarm never lands in the bookkeeping below
            armed[0] = False
            raise Hang()

    def attempt(folder: Path) -> BaseException | None:
        """`use(folder)` under the time and address-space limits; what it raised, or None."""
        resource.setrlimit(resource.RLIMIT_AS, (_address_space() + address_headroom, hard))
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, seconds_per_case)
        try:
            try:
                use(folder)
            finally:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        except BaseException as e:  # a Rust panic (pyo3's PanicException) is a BaseException; a Hang too
            return e
        return None

    # pytest-timeout's own alarm (SIGALRM too) is set aside while the cases run, and put back after, less the time spent
    outer_alarm, began = signal.getitimer(signal.ITIMER_REAL)[0], time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        for seed in seeds:
            folder = work / f"{name}-{seed}"
            shutil.copytree(template, folder, symlinks=True)
            try:
                mutation = mutate(random.Random(seed), folder)
            except Exception as e:  # the test's own mutator broke: report it, it is not the loader's failure
                raise AssertionError(f"{name} seed {seed}: the mutator failed: {e!r}") from e
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            start = time.monotonic()
            error = attempt(folder)
            seconds = time.monotonic() - start
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise error
            if error is None:
                outcomes["accepted"] += 1
            elif isinstance(error, GPTStackError):
                outcomes["refused"] += 1
                message = str(error)
                if "\n" in message or not message.strip() or len(message) > MAX_MESSAGE:
                    failures.append(Failure(seed, mutation, f"not one line ({len(message)} chars): "
                                                            f"{short_repr(message)}", _project_frame(error)))
            elif isinstance(error, Hang):
                failures.append(Failure(seed, mutation, f"hang (over {seconds_per_case:.0f} s)", "?"))
            elif isinstance(error, MemoryError):
                failures.append(Failure(seed, mutation, "memory (past the address-space limit)",
                                        _project_frame(error)))
            else:
                failures.append(Failure(seed, mutation, f"{type(error).__name__}: {' '.join(str(error).split())[:200]}",
                                        _project_frame(error)))
            if not isinstance(error, Hang) and seconds > seconds_per_case:  # a C call the alarm could not interrupt
                failures.append(Failure(seed, mutation, f"hang ({seconds:.1f} s)", "?"))
            leaked = _copies_of_secret(folder)
            if leaked:
                failures.append(Failure(seed, mutation, f"leak: the linked private file was copied to {leaked}", "?"))
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
            if grown > memory_headroom:
                failures.append(Failure(seed, mutation, f"memory (peak grew by {grown / 2**20:,.0f} MiB)", "?"))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
        if outer_alarm:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_alarm - (time.monotonic() - began)))
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
