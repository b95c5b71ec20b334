"""Helpers of the fault-injection suite (tests/test_faults_*.py, issue 13): real files, real processes, real signals.

Everything here drives the command-line tools (`python -m pipeline.prepare`, `python -m model.train`, ...) as a user
would, and damages files the way the world does (a cut download, a full disk, a planted pickle), so the tests do not
depend on how the modules are organised inside.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO_ROOT
from tests.support.train import descendants  # noqa: F401 (every process below a pid, for the fault tests)

SHARD_HEADER_BYTES = 256 * 4  # llm.c's header: 256 little-endian int32, then uint16 tokens


def python_module(module: str, *args, timeout: int = 300, env: dict | None = None,
                  **kwargs) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in the repository, output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The README's promise: exit code 2, one `error: ...` line naming what is wrong, no traceback."""
    shown = result.stdout[-2000:] + result.stderr[-3000:]
    assert result.returncode == 2, shown
    assert "Traceback" not in result.stderr, shown
    lines = error_lines(result)
    assert len(lines) == 1, shown
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tree_digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file below `folder` (relative path -> digest), to show that nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not any(s in str(p) for s in skip)}


# ---- shards ----------------------------------------------------------------------------------------------------
def set_token(folder: Path, shard: str, position: int, token: int) -> None:
    """Overwrite one token of a shard and reseal manifest.json with the new sha256, as a tool writing ids
    outside the vocabulary would: the header, the size and the checksum are all valid."""
    path = folder / shard
    data = bytearray(path.read_bytes())
    offset = SHARD_HEADER_BYTES + 2 * position
    data[offset:offset + 2] = int(token).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["shards"]:
        if entry["file"] == shard:
            entry["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2))


def truncate(path: Path, keep_fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep_fraction)])


# ---- a planted pickle ----------------------------------------------------------------------------------------
class RunsACommand:
    """What an attacker plants in a checkpoint: unpickling it runs a shell command (here: creates a file)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def plant_pickle(path: Path, marker: Path) -> None:
    """Replace `path` with a torch.save file whose unpickling creates `marker` (a real torch zip pickle)."""
    import torch

    torch.save({"state": RunsACommand(f"touch {shlex.quote(str(marker))}")}, path)


def reseal_checkpoint(checkpoint: Path) -> None:
    """What an attacker who edits a checkpoint also does: make its list of files and sizes (written at the
    commit, checkpoint_files.json) match the edited files again, so that only the loader stands in the way."""
    listing = checkpoint / "checkpoint_files.json"
    if listing.is_file():
        data = json.loads(listing.read_text())
        data["files"] = {name: (checkpoint / name).stat().st_size for name in data["files"]}
        listing.write_text(json.dumps(data))


# ---- processes ---------------------------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, exited but not reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and everything below it (cleanup after a test; every pid is one this test started)."""
    for pid in [process.pid] + descendants(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def listening_tcp_ports(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process `pid` holds open (from /proc)."""
    from cluster.ports import listening_ports

    return listening_ports(pid)


# ---- a small disk: a tmpfs in a private mount namespace ---------------------------------------------------------
def run_on_small_disk(mountpoint: Path, size_bytes: int, script: str, timeout: int = 600,
                      env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a bash `script` with a fresh tmpfs of `size_bytes` mounted at `mountpoint`, in a mount namespace of its
    own (`unshare --mount`): the disk exists for this script alone and disappears with it, whatever happens.
    The script runs in the repository; $PY is this interpreter."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    size_kib = max(1, size_bytes // 1024)
    wrapper = (f"set -u; mount -t tmpfs -o size={size_kib}k tmpfs {shlex.quote(str(mountpoint))} || exit 99; "
               f"cd {shlex.quote(str(REPO_ROOT))}; PY={shlex.quote(sys.executable)}; {script}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapper], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)
