"""A progress bar for a stage that runs on a local or Ray executor.

datatrove's executors report nothing until they return, so the stage runs in a thread while this one watches what
its tasks leave on disk: the completion markers (`logs/<stage>/completions/<rank>`) for every stage, and, for the
tokenize stage, the size of the token files its tasks are writing (8 bytes per document in `*.doc_tokens`, 2 per
token in `*.tokens`), which gives documents and tokens per second while they run.
"""
import json
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from gptstack.errors import GPTStackError
from pipeline.read.progress import PROGRESS_FOLDER, read_progress
from pipeline.runner.stages import Stage


def folder_bytes(folder: Path, pattern: str) -> int:
    total = 0
    for path in folder.glob(pattern):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed by its task in the meantime
            pass
    return total


def documents_written(logging_dir: Path) -> int | None:
    """Documents the last step of a finished stage passed on, from the stats.json datatrove writes at its end; the
    total of the next stage's progress bar (tokenize reads what shuffle-sort wrote). None when unknown."""
    try:
        steps = json.loads((Path(logging_dir) / "stats.json").read_text())
        return int(steps[-1]["stats"]["documents"]["total"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def run_with_progress(executor, stage: Stage, total_documents: int | None,
                      run: Callable | None = None, shares: list[int] | None = None) -> tuple[object, float]:
    """Run the executor (`run()`, default `executor.run()`) in a thread while a progress bar follows it: documents
    and tokens per second for the tokenize stage (from the token files its tasks write); for the read stage, with
    `shares` (bytes of input each task reads, pipeline/read/progress.py), bytes read against the input's size;
    finished tasks for the others. Returns (stats, seconds)."""
    if shares and sum(shares) > 0:
        return _run_reading(executor, stage, run, shares)
    start = time.time()
    thread, stats, failure = _start(executor, run)
    tokenizing = stage.name == "tokenize"
    tokens_folder, completions = Path(stage.outputs[0]), Path(executor.logging_dir.path) / "completions"
    with tqdm(total=total_documents if tokenizing else stage.tasks, unit="doc" if tokenizing else "task",
              desc=stage.name, dynamic_ncols=True) as bar:
        while thread.is_alive():
            thread.join(0.5)
            if tokenizing:
                documents = folder_bytes(tokens_folder, "*.doc_tokens*") // 8
                tokens = folder_bytes(tokens_folder, "*.tokens*") // 2
                bar.update(documents - bar.n)
                bar.set_postfix_str(f"{tokens / max(time.time() - start, 1e-9):,.0f} tok/s", refresh=False)
            else:
                bar.update(len(list(completions.glob("*"))) - bar.n if completions.is_dir() else 0)
        if not tokenizing and not failure:
            bar.update(stage.tasks - bar.n)
    _raise_failure(failure, stage, executor)
    return (stats[0] if stats else None), time.time() - start


def _start(executor, run: Callable | None) -> tuple[threading.Thread, list, list]:
    failure: list[BaseException] = []
    stats: list = []

    def target():
        try:
            stats.append((run or executor.run)())
        except BaseException as e:  # re-raised in the main thread
            failure.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stats, failure


def _run_reading(executor, stage: Stage, run: Callable | None, shares: list[int]) -> tuple[object, float]:
    """The read stage's bar: bytes of the input files read (each task's progress file; a finished task's whole
    share, from its completion marker, so the bar moves even where the progress files are not seen), an ETA, and
    documents read and tasks finished beside it."""

    start = time.time()
    thread, stats, failure = _start(executor, run)
    logs = Path(executor.logging_dir.path)
    completions, progress = logs / "completions", logs / PROGRESS_FOLDER
    with tqdm(total=sum(shares), unit="B", unit_scale=True, unit_divisor=1024, desc=stage.name,
              dynamic_ncols=True) as bar:
        while thread.is_alive():
            thread.join(0.5)
            done = {int(p.name) for p in completions.glob("*") if p.name.isdigit()} if completions.is_dir() else set()
            reading = read_progress(progress) if progress.is_dir() else {}
            consumed = sum(share if rank in done else min(reading.get(rank, (0, 0))[0], share)
                           for rank, share in enumerate(shares))
            documents = sum(documents for _, documents in reading.values())
            bar.update(max(consumed - bar.n, 0))
            bar.set_postfix_str(f"{documents:,} docs, {len(done & set(range(len(shares))))}/{len(shares)} tasks",
                                refresh=False)
        if not failure:
            bar.update(bar.total - bar.n)
    _raise_failure(failure, stage, executor)
    return (stats[0] if stats else None), time.time() - start


def _raise_failure(failure: list, stage: Stage, executor) -> None:
    if failure:
        error = failure[0]
        if isinstance(error, GPTStackError):
            raise error
        raise GPTStackError(f"stage {stage.name} failed ({type(error).__name__}: {error}); logs in "
                            f"{executor.logging_dir.path}/logs; the same command resumes") from error
