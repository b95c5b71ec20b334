"""A rank started by a launcher ends when the launcher dies, however it dies.

`torchrun` starts every worker in a session of its own (torch's SubprocessHandler: start_new_session=True), so
`kill -9` of the launcher, or of the terminal's process group, reaches the launcher alone: its ranks would train on
to the last step, unsupervised, write into the run folder and hold its lock (gptstack/folder_lock.py), so that
the restart the user types is refused. The `deepspeed` launcher's ranks share its process group, but `kill -9` of
its per-node `launch.py` alone leaves them the same way. (Slurm's `srun` is not concerned: it kills the whole job.)

So a rank whose environment says a launcher started it watches its parent: one daemon thread checks twice a second
whether os.getppid() is still the pid it started under. A dead parent's children are handed to init (or to a
subreaper), so the parent pid changes exactly when the launcher is gone, and a new process that happens to get
the old pid changes nothing. The rank then ends at once, without a checkpoint: the other ranks are ending the same
way, so no collective could complete, and the restart resumes from the last committed checkpoint (an unfinished
save is a `.tmp` folder the next start removes). A plain parent-death signal (prctl PR_SET_PDEATHSIG) would follow
the launcher *thread* that started the rank, and is Linux-only; pipeline/runner/lifeline.py watches the same way
for the pipeline's workers.

A process started without a launcher (plain `python -m model.train`, srun's tasks, a test that builds a Trainer
in process) starts no thread.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Mapping

POLL_SECONDS = 0.5
EXIT_LAUNCHER_GONE = 70  # EX_SOFTWARE, as the pipeline's workers; nobody waits for it: the launcher is gone


def launcher_of(environ: Mapping[str, str]) -> str | None:
    """The launcher that is this process's parent, from the variables it sets only in its workers' environment:
    "torchrun" (its elastic agent), "deepspeed" (its launch.py), or None."""
    if "TORCHELASTIC_RUN_ID" in environ:
        return "torchrun"
    if "CROSS_RANK" in environ and "LOCAL_SIZE" in environ and "RANK" in environ:
        return "deepspeed"
    return None


def _watch(parent: int, launcher: str) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    _stop(parent, launcher)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # its terminal or pipe may be gone with the launcher
        pass


def _stop(parent: int, launcher: str) -> None:
    text = (f"rank {os.environ.get('RANK', '?')}: the {launcher} launcher (pid {parent}) is gone: stopping now, "
            f"without a checkpoint; the same command resumes from the last one")
    # said from a thread of its own: a full pipe that nobody reads any more must not keep this rank alive
    saying = threading.Thread(target=_say, args=(text,), daemon=True)
    saying.start()
    saying.join(1.0)
    os._exit(EXIT_LAUNCHER_GONE)


_started = {"pid": None, "parent": None, "launcher": None}  # the process whose thread runs (a fork copies the
# dict, not the thread), and the launcher it watches


def watch_launcher(environ: Mapping[str, str] | None = None) -> str | None:
    """In a rank that a launcher started: end this process within POLL_SECONDS of the launcher's death (once per
    process). Returns the launcher's name, None (and nothing started) without one."""
    launcher = launcher_of(os.environ if environ is None else environ)
    if launcher is None or _started["pid"] == os.getpid():
        return launcher
    parent = os.getppid()
    _started.update(pid=os.getpid(), parent=parent, launcher=launcher)
    if parent == 1:  # already handed to init: the launcher died before this line
        _stop(parent, launcher)
    threading.Thread(target=_watch, args=(parent, launcher), name="gptstack-launcher-lifeline", daemon=True).start()
    return launcher


def stop_if_launcher_gone() -> None:
    """For a rank's error path: when the launcher is already gone, the error is most likely its sibling rank having
    stopped first (a collective that lost its peer), so stop as the watcher would, with its line, not a traceback."""
    if _started["pid"] == os.getpid() and os.getppid() != _started["parent"]:
        _stop(_started["parent"], _started["launcher"])
