"""Worker processes end when the run's main process dies, however it dies.

A local stage runs in processes the main process does not own directly: datatrove's multiprocess Manager (a fork of
the main process), the pool workers (forks of multiprocess's fork server), and each worker's Trafilatura sandbox (a
fork of the worker). When the main process is killed (`kill -9`, the out-of-memory killer), nothing tells them: they
would go on writing into `.prepare-work/` for minutes, hold the output folder's lock (gptstack/folder_lock.py) and
race the run that resumes. The fork server and the resource tracker need nothing: they exit once the workers have.

So `mark_main_process()` (called where the executors are made, in the main process) writes the main process's pid
and start time into the environment, which every descendant inherits; and every process started through
multiprocess or multiprocessing runs `watch_main_process` right after its fork (their after-fork hook, registered
when this module is imported: the fork server imports the main module, so the workers it forks have the hook too).
It starts one daemon thread that checks twice a second whether that process still exists (a zombie, or a new
process that got the same pid, counts as gone) and ends this process at once if not. A plain parent-death signal
(prctl PR_SET_PDEATHSIG) is not enough: a pool worker's parent is the fork server, not the main process, and the
signal follows the death of the parent *thread*, which for the Manager is the progress bar's.
"""
import multiprocessing.util
import os
import threading
import time

import multiprocess.util

MAIN_ENV = "GPTSTACK_PIPELINE_MAIN"  # "PID:START" of the process whose death ends the workers
POLL_SECONDS = 0.5


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None if it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is dead, only not yet reaped


def mark_main_process() -> None:
    """Make this process the one whose death ends every worker started from now on (Linux; no-op elsewhere)."""
    start = _start_time(os.getpid())
    if start is not None:
        os.environ[MAIN_ENV] = f"{os.getpid()}:{start}"


def _watch(pid: int, start: str) -> None:
    while _start_time(pid) == start:
        time.sleep(POLL_SECONDS)
    os._exit(70)  # the main process is gone: stop now, as it did (a rerun redoes this task)


_watching = {"pid": None}  # the process this module's thread runs in (a fork copies the dict, not the thread)


def watch_main_process(_anchor=None) -> None:
    """In a worker: end this process when the marked main process dies (once per process)."""
    marked = os.environ.get(MAIN_ENV, "")
    if _watching["pid"] == os.getpid() or ":" not in marked:
        return
    pid, start = marked.split(":", 1)
    if int(pid) == os.getpid():
        return
    _watching["pid"] = os.getpid()
    threading.Thread(target=_watch, args=(int(pid), start), name="gptstack-lifeline", daemon=True).start()


class _Anchor:
    """What the after-fork registries hold (they keep weak references: this module keeps the object alive)."""


_ANCHOR = _Anchor()
multiprocess.util.register_after_fork(_ANCHOR, watch_main_process)  # datatrove's pool, Manager
multiprocessing.util.register_after_fork(_ANCHOR, watch_main_process)  # datatrove's extraction sandbox
