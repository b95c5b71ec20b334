"""One run per folder: the advisory lock that `pipeline.prepare` takes on OUTPUT/.prepare-work/lock and the trainer
(rank 0) on RUN_DIR/.lock, held until the process exits.

Two prepares into one folder would share `.prepare-work/` (the second resuming the first's half-written stages, the
first commit deleting the work folder under the other); two trainers in one run folder would interleave their
metrics and checkpoints and prune each other's saves. So the process takes `fcntl.flock` on the lock file before it
reads or cleans anything else there, and a second one refuses at once with one line naming the holder.

Why flock: the kernel releases it when the last process holding the open file ends, whatever the way (exit,
kill -9, out-of-memory killer), so a killed run leaves no lock to delete by hand; the next run takes it over and says
so (`took_over`: the record the dead holder left). The workers a local executor forks share the lock with their
parent (same open file): while an orphaned worker of a killed prepare still writes, the folder stays locked, and a
new run that finds the holder's main process dead waits `orphan_grace` seconds for those workers to notice
(pipeline/runner/lifeline.py). A lock file that is replaced while we wait for it (prepare's work folder goes away at
its commit) is noticed: after locking, we check that the file we hold is still the one at that path.

The file holds the holder's record (pid, host, start, command), written only once the lock is held and emptied at a
clean end. It is opened with O_NOFOLLOW: a lock path that is a symlink is refused, never followed and truncated.

Limits: flock is advisory (only our commands look at it) and, on some network file systems (old NFS, Lustre
without its flock mount option), not supported or local to one node. Where locking is not supported the command
goes on with a warning (refusing would make those file systems unusable), so keep to one run per folder yourself.
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

BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class FolderBusy(GPTStackError):
    """Another run holds the folder."""


class FolderLock:
    """`FolderLock(path, folder, command).acquire()` holds `path` (creating its parent) until `release()`, the end
    of a `with` block, or the end of the process; `took_over` is the record of a run that died holding it."""

    def __init__(self, path: Path, folder: Path, command: str, hint: str = "then run this command again",
                 orphan_grace: float = 0.0):
        self.path, self.folder, self.command, self.hint = Path(path), Path(folder), command, hint
        self.orphan_grace = orphan_grace
        self.fd: int | None = None
        self.took_over: dict | None = None

    def acquire(self) -> "FolderLock":
        give_up_waiting = time.monotonic() + self.orphan_grace
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                record = _read_record(fd)
                os.close(fd)
                if e.errno not in BUSY:
                    print(f"warning: cannot lock {self.path} ({e.strerror}); make sure no other {self.command} uses "
                          f"{self.folder}", file=sys.stderr)
                    return self
                if _holder_died(record) and time.monotonic() < give_up_waiting:
                    time.sleep(0.2)  # its forked workers still share the lock; they exit when they see it gone
                    continue
                raise FolderBusy(f"{self.folder} is in use by another {self.command} ({describe(record)}); wait for "
                                 f"it to finish or stop it, {self.hint}") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the file was replaced while we waited for it: lock the one that is there now
        self.took_over = _read_record(fd) or None  # a record left in a lock nobody held: its run died
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd
        atexit.register(self.release)  # any normal exit (an error line included) leaves the file empty
        return self

    def _open(self) -> int:
        try:  # never truncated before we hold it: it may be the holder's record
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            kind = ("a symbolic link" if e.errno == errno.ELOOP else
                    "a folder" if e.errno == errno.EISDIR else e.strerror)
            raise GPTStackError(f"{self.path}: cannot be used as the lock of {self.folder} ({kind}); move it away") \
                from None

    def release(self) -> None:
        """Empty the file (a clean end) and unlock. The file stays: removing it would race with a new holder."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)  # (closing releases the flock)
        self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def _read_record(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        record = json.loads(text) if text else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder_died(record: dict) -> bool:
    """True when the record names a process on this machine that no longer exists."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return False


def describe(record: dict) -> str:
    """The holder, as messages name it."""
    if not record:
        return "its details are not written yet"
    where = f"pid {record.get('pid')}" + (f" on {record['host']}" if record.get("host") != socket.gethostname() else "")
    return f"{where}, started {record.get('started', '?')}: {record.get('command', '?')}"


def describe_takeover(record: dict) -> str:
    """The line that says a killed run's lock was taken over (its finished work is reused)."""
    return (f"note: an earlier run ({describe(record)}) ended without finishing; its lock is taken over and its "
            "finished work is reused")
