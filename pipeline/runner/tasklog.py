"""A full disk ends a stage with our one `error:` line, not with pages of tracebacks above it.

datatrove logs every task to the console and to `logs/<stage>/logs/task_NNNNN.log` (`add_task_logger`). When the
disk fills up, two things print tracebacks to the console before `pipeline.prepare` can say what happened: the
task's `logger.exception` of the OSError, and loguru itself, which catches the failed write of the task's log file
(same full disk) and prints "Logging error in Loguru Handler" with the traceback of that. `task_logger` is
datatrove's `add_task_logger` with the same sinks, format and levels, and two changes:
  * the console leaves out the traceback of an error that says the disk is full (the message line stays; any other
    error keeps its traceback, on the console and in the task's log);
  * the log-file sink does not catch its own write errors: a log that cannot be written fails the task with that
    OSError (which the run reports in one line) instead of printing a traceback and going on.
`use_task_logger()` puts it in place of datatrove's in the process that runs tasks (each worker imports datatrove
afresh, so it is called where a task starts: pipeline/runner/executors.py).
"""
import errno
import sys

from loguru import logger

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
CONSOLE_LEVEL = "WARNING"  # INFO goes to the task's log file only: 135 of 534 console lines for 200 documents
FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | <level>{level: <8}</level> | {name}:{function}:{line} - <level>{message}</level>"


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from or during, says the disk (or the quota) is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


def _console_format(record) -> str:
    """FORMAT plus the traceback, unless the record's exception is a full disk (loguru adds none by itself to a
    format given as a function)."""
    exception = record["exception"]
    shown = exception is not None and not is_disk_full(exception.value)
    return FORMAT + ("\n{exception}" if shown else "") + "\n"


def task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove.utils.logging.add_task_logger with the changes in the module doc; returns the log file."""
    from datatrove.utils.logging import DATATROVE_COLORIZE_LOG_FILES, DATATROVE_COLORIZE_LOGS

    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    logger.add(sys.stderr, colorize=DATATROVE_COLORIZE_LOGS, level=CONSOLE_LEVEL if local_rank == 0 else "ERROR",
               format=lambda record: prefix + _console_format(record))
    logger.add(logfile, colorize=DATATROVE_COLORIZE_LOG_FILES, level="DEBUG", format=prefix + FORMAT, catch=False)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def quiet_console() -> None:
    """The console of this process shows warnings and errors only; datatrove's INFO lines (each task's start,
    its pipeline, the whole stats dictionary of every stage) stay in the task logs and stats.json files."""
    from datatrove.utils.logging import DATATROVE_COLORIZE_LOGS

    logger.remove()
    logger.add(sys.stderr, colorize=DATATROVE_COLORIZE_LOGS, level=CONSOLE_LEVEL, format=_console_format)


def close_task_logger(logfile) -> None:
    """datatrove's close_task_logger, which puts back a console sink at every level, with `quiet_console`'s."""
    logger.complete()
    quiet_console()
    logfile.close()


def use_task_logger() -> None:
    """Make datatrove's executors in this process log their tasks with `task_logger` (and end with a quiet console)."""
    import datatrove.executor.base

    datatrove.executor.base.add_task_logger = task_logger  # the name its _run_for_rank calls
    datatrove.executor.base.close_task_logger = close_task_logger
