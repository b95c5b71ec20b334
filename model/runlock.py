"""One trainer per run folder: an advisory lock on RUN_DIR/.lock, held for the whole run by rank 0.

Two trainers writing one run folder would interleave their metrics and checkpoints and prune each other's saves.
The lock is `fcntl.flock` on RUN_DIR/.lock: the kernel releases it when the process ends, however it ends, so a run
killed with SIGKILL (or a lost node on a local disk) never leaves a lock that blocks the next start. The file keeps
who held it (pid, host, start time); a file still naming a holder when the lock is free means that holder ended
without releasing it, and the new run says it takes over.

Only rank 0 of a run locks (all ranks of one run share the folder). flock works on local disks and on most cluster
file systems (Lustre with its flock mount option, GPFS, NFSv4); where it does not, taking it fails open with a
warning rather than blocking a run.
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from gptstack.errors import GPTStackError

LOCK_NAME = ".lock"


class RunFolderBusy(GPTStackError):
    """Another trainer holds the run folder."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
                       if holder else "another process")
                raise RunFolderBusy(f"run folder {self.path.parent} is in use by another trainer ({who}); wait for "
                                    f"it to finish or stop it, or give another --run-dir") from None
            print(f"warning: cannot lock {self.path} ({e.strerror}); make sure no other trainer uses this run folder",
                  file=sys.stderr)
            return self
        previous = _read_holder(fd)
        if previous:
            print(f"taking over the lock of {self.path.parent}: its last holder (pid {previous.get('pid')} on "
                  f"{previous.get('host')}, started {previous.get('started')}) ended without releasing it", flush=True)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        atexit.register(self.release)  # any normal exit (an error line included) leaves the file empty
        return self

    def release(self) -> None:
        """Empty the file (a clean end) and unlock. The file stays: removing it would race with a new holder."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "started": "?"}
