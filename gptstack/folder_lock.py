"""One `pipeline.prepare` at a time per output folder: an advisory lock on OUTPUT/.prepare-work/lock.

Two runs into one folder would share `.prepare-work/`: the second would resume the first's half-written stages, both
would write the same task files, and the one that commits first would delete the work folder under the other. So the
main process takes `fcntl.flock` on `.prepare-work/lock` before it reads or cleans anything else there, and holds it
until it exits. A second run refuses at once with one line naming the holder (pid, host, start, command).

Why flock: the kernel releases it when the last process holding the open file ends, whatever the way (exit, kill -9,
out-of-memory killer), so a killed run leaves no lock to delete by hand; the next run takes it over and says so. The
workers a local executor forks share the lock with their parent (same open file): while an orphaned worker of a
killed run still writes, the folder stays locked. The lock file goes with the work folder when a run commits (the
output folder holds only shards, manifest and companions); a run that opened it just before is not fooled: after
locking, it checks that the file it locked is still the one at that path, and starts over if not.

Limits: flock is advisory (only prepare looks at it) and, on some network filesystems (old NFS), local to one node.
With `--executor slurm` the submitting process holds it only while it submits; the jobs' own runs of prepare take it
again (and `check_no_slurm_jobs_running` refuses a run while the submitted jobs are queued).
"""
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from gptstack.errors import InputError

LOCK_NAME = "lock"
# A run killed with kill -9 leaves its forked workers holding the lock until they notice (pipeline/runner/lifeline.py, about
# a second; longer on a loaded machine): a run that finds the holder's main process dead waits this long for them.
ORPHAN_GRACE_SECONDS = 30


class OutputLock:
    """`with OutputLock(output, work) as lock:` holds `work/lock` for the block (creating `work`); `lock.took_over`
    is the record of a run that died holding it (None when the lock was free and clean)."""

    def __init__(self, output: Path, work: Path, command: str = "prepare"):
        self.output, self.path, self.command = Path(output), Path(work) / LOCK_NAME, command
        self.file, self.took_over = None, None

    def acquire(self) -> "OutputLock":
        orphans_gone_by = time.monotonic() + ORPHAN_GRACE_SECONDS
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+", encoding="utf-8")  # never truncated before we hold it: the holder's record
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _read_record(file)
                file.close()
                if _holder_died(record) and time.monotonic() < orphans_gone_by:
                    time.sleep(0.2)  # its forked workers still share the lock; they exit when they see it gone
                    continue
                holder = _describe(record)
                raise InputError(f"{self.output} is in use by another {self.command} ({holder}); wait for it "
                                 "to finish or stop it, then run this command again") from None
            except OSError as e:  # a filesystem without locks: say so rather than run unprotected silently
                file.close()
                raise InputError(f"{self.path}: cannot lock the output folder ({e.strerror or e})") from None
            if _same_file(file, self.path):
                break
            file.close()  # the file was replaced while we waited for it: lock the one that is there now
        record = _read_record(file)
        self.took_over = record or None  # a record left in a lock nobody held: its run died
        file.seek(0)
        file.truncate()
        file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                               "command": " ".join(["python -m pipeline.prepare", *sys.argv[1:]])[:500]}))
        file.flush()
        self.file = file
        return self

    def release(self) -> None:
        if self.file is not None:
            self.file.seek(0)
            self.file.truncate()  # an empty record: the run ended cleanly
            self.file.flush()
            self.file.close()  # (closing releases the flock)
            self.file = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def _read_record(file) -> dict:
    try:
        file.seek(0)
        record = json.loads(file.read() or "{}")
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


def _describe(record: dict) -> str:
    if not record:
        return "its details are not written yet"
    where = f"pid {record.get('pid')}" + (f" on {record['host']}" if record.get("host") != socket.gethostname() else "")
    return f"{where}, started {record.get('started', '?')}: {record.get('command', '?')}"


def _same_file(file, path: Path) -> bool:
    try:
        return os.fstat(file.fileno()).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def describe_takeover(record: dict) -> str:
    """The line that says a killed run's lock was taken over (its work resumes as usual)."""
    return (f"note: an earlier run ({_describe(record)}) ended without finishing; its lock is taken over and its "
            "finished work is reused")
