"""Trafilatura's per-page time limit counted in CPU seconds, so a busy machine keeps the same pages as an idle one.

datatrove runs the extraction in a sandbox process and gives up on a page after `timeout` seconds of wall-clock
time (1 s in FineWeb's recipe). Wall-clock time depends on everything else the machine does: with every core busy, a
page that needs 0.3 s of CPU waits its turn and takes over a second, and the same WARC gives other shards on a
loaded machine. `CpuBudgetSandbox` is datatrove's sandbox with the limit counted in CPU time of the sandbox process
(`setitimer(ITIMER_PROF)`: user + system time of that process only), which other processes do not inflate:

  * the budget is the recipe's `timeout`, now in CPU seconds. On an idle machine, where a page's wall-clock time is
    its CPU time, the same pages are kept as before;
  * a page over budget is answered with `CpuBudgetExceeded` from inside the sandbox (the process stays, no restart):
    interrupted by the timer, or, for budgets below the kernel's timer tick, measured when it returns;
  * the wall clock is only a backstop for a sandbox stuck where no signal handler runs (inside C code), so generous
    (WALL_BACKSTOP_FACTOR times the budget, at least WALL_BACKSTOP_MIN seconds), and so is the wait for a new
    sandbox to start, which under load used to time out the first page of a task;
  * an exception in the extraction is sent back and raised for that page (datatrove's sandbox let it kill the
    process, and the page counted as a dead process).
"""
import signal
import time

from datatrove.pipeline.extractors.base import ExtractorSandbox

WALL_BACKSTOP_FACTOR = 60
WALL_BACKSTOP_MIN = 60.0


def wall_backstop(cpu_seconds: float) -> float:
    """Wall-clock seconds after which a page's sandbox is given up on (and restarted), whatever the load."""
    return max(WALL_BACKSTOP_MIN, WALL_BACKSTOP_FACTOR * float(cpu_seconds))


class CpuBudgetExceeded(Exception):
    """The page needed more CPU time than the budget (raised in the sandbox, re-raised in the task)."""


_armed = [False]  # a page is being extracted: a SIGPROF that arrives after it returned must not raise


def _over_budget(signum, frame):
    if _armed[0]:
        _armed[0] = False
        raise CpuBudgetExceeded("over its CPU-time budget")


class CpuBudgetSandbox(ExtractorSandbox):
    """datatrove's ExtractorSandbox, each page limited to `cpu_seconds` of the sandbox's CPU time (module doc)."""

    def __init__(self, cpu_seconds: float, warmup_text=""):
        self.cpu_seconds = float(cpu_seconds)
        super().__init__(timeout=wall_backstop(self.cpu_seconds), warmup_text=warmup_text)

    def _worker(self, conn, extract_fn):  # runs in the sandbox process
        signal.signal(signal.SIGPROF, _over_budget)
        self.set_oom_score_adj(1000)  # (as datatrove's: this process goes first when memory runs out)
        extract_fn(*self.warmup_text) if isinstance(self.warmup_text, tuple) else extract_fn(self.warmup_text)
        conn.send(None)  # ready
        while True:
            try:
                page = conn.recv()
            except EOFError:
                break
            try:
                _armed[0], start = True, time.process_time()
                signal.setitimer(signal.ITIMER_PROF, self.cpu_seconds)
                result = extract_fn(*page) if isinstance(page, tuple) else extract_fn(page)
                _armed[0] = False
                if time.process_time() - start > self.cpu_seconds:  # the timer fires on the kernel's ticks only
                    result = CpuBudgetExceeded("over its CPU-time budget")
            except Exception as error:  # noqa: BLE001 - this page's failure, reported for this page only
                result = error
            finally:
                _armed[0] = False
                signal.setitimer(signal.ITIMER_PROF, 0)
            try:
                conn.send(result)
            except Exception as error:  # noqa: BLE001 - an exception that does not pickle: send what it said
                conn.send(RuntimeError(f"{type(result).__name__}: {result} ({error})"))
