"""The stages of `pipeline.prepare`: each one a separate run of the executor that reads the folder the stage before
it wrote and writes its own folder.

    read (+ clean)  -> documents/          one `<rank>.jsonl.zst` per task
    dedup           -> dedup/...           signatures -> buckets -> clusters -> filter     (pipeline/dedup/)
    filter          -> filtered/           the recipe's steps after `dedup.after`, if it names one (fineweb2)
    shuffle         -> shuffle/...         scatter by a seeded key -> sort each bucket     (pipeline/tokens/shuffle.py)
    tokenize        -> tokens/             one token stream per task                (pipeline/tokens/tokenize_step.py)

Stages that pass documents on write one file per task, `<rank>.jsonl.zst`, and the next stage runs as many tasks and
reads file `<rank>` back with `StageReader`. Because every reader hands out its input in contiguous blocks, the
files of ranks 0, 1, 2, ... hold the corpus in order for any number of tasks.

Skipping finished work. A stage's *fingerprint* is a hash of its own configuration and of the fingerprint of the
stage before it, so it changes when the command or the input changes anywhere upstream. `work/stages/<name>.json`
records it: written with `"done": false` when the stage starts and rewritten (atomically) with `"done": true` once
every task has finished. On a rerun a stage whose record says done with the same fingerprint is skipped; one that
started with the same fingerprint resumes (datatrove skips its finished tasks, by their completion markers). A
record with another fingerprint (an interrupted run of another command or input) stops the run before any work,
unless told to restart: then that stage and all after it start afresh with their output folders and logs emptied,
so old outputs are never mixed with new ones.
"""
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from gptstack.errors import GPTStackError
from gptstack.files import atomic_write

STAGE_FILE = "{rank:05d}.jsonl.zst"  # what a document-passing stage writes per task
STAGE_FILENAME_TEMPLATE = "${rank}.jsonl.zst"  # the same name for datatrove's JsonlWriter


def stage_record(writer, document) -> dict:
    """What a stage file holds per document. datatrove's default adapter drops falsy fields, which would turn an id
    such as 0 into one made from the stage file's name and so make it depend on the number of tasks."""
    return {"text": document.text, "id": document.id, "metadata": document.metadata}


def stage_writer(folder) -> JsonlWriter:
    """The writer of a document-passing stage: `<rank>.jsonl.zst` in `folder`, read back by `StageReader`."""
    return JsonlWriter(str(folder), STAGE_FILENAME_TEMPLATE, compression="zstd", adapter=stage_record)


@dataclass
class Stage:
    """One executor run: `steps` (a datatrove pipeline) over `tasks` tasks."""

    name: str
    steps: list
    tasks: int
    outputs: list[Path]  # folders the stage writes; emptied when it starts afresh
    config: dict = field(default_factory=dict)  # everything besides the previous stage that decides its output


def stage_fingerprint(stage: Stage, previous: str) -> str:
    text = json.dumps({"name": stage.name, "tasks": stage.tasks, "config": stage.config, "previous": previous},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def input_signature(readers: list) -> list:
    """Each reader's files with their size and modification time (when local): part of the read stage's config, so
    that a changed input file makes the read stage, and every stage after it, start afresh on a rerun."""
    signature = []
    for reader in readers:
        root = getattr(getattr(reader, "data_folder", None), "path", "")
        for name in getattr(reader, "files", None) or [getattr(reader, "path", None)]:
            try:
                info = os.stat(os.path.join(root, name) if root else name)
                signature.append([name, info.st_size, info.st_mtime_ns])
            except (OSError, TypeError):  # remote (hf://, s3://): its name is all we check
                signature.append([name])
    return signature


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class StageMismatchError(GPTStackError):
    """The work folder holds stages of another command or input."""


@dataclass
class StageRun:
    """What `run_stages` did with one stage."""

    name: str
    status: str  # "ran", "resumed", "skipped" (an earlier run with the same fingerprint finished it) or "submitted"
    stats: object = None  # datatrove PipelineStats of the run (None when skipped)
    seconds: float = 0.0


def _changes(record: dict, stage: Stage) -> list[str]:
    """What differs between a stage record and the stage now (its own settings; [] when only a stage before it
    changed)."""
    changed = [] if record.get("tasks", stage.tasks) == stage.tasks else ["--tasks"]
    old, new = record.get("config", {}), json.loads(json.dumps(stage.config, sort_keys=True, default=str))
    return changed + sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def check_same_run(stages: list[Stage], work: Path) -> None:
    """Refuse work folders left by an interrupted run of another command or input: its outputs must not be mixed
    with ours. Raises StageMismatchError naming the first stage that differs and what changed."""
    previous = ""
    for stage in stages:
        fingerprint = stage_fingerprint(stage, previous)
        record = _read_record(Path(work) / "stages" / f"{stage.name}.json")
        if record and record.get("fingerprint") != fingerprint:
            changes = _changes(record, stage)
            what = f"{', '.join(changes)} changed" if changes else "an earlier stage's settings or input changed"
            raise StageMismatchError(f"{work}: holds an unfinished run of another command or input (stage "
                                     f"{stage.name}: {what}); run that command again to finish it, or add "
                                     "--restart to redo what changed")
        previous = fingerprint


def run_stages(stages: list[Stage], work: Path, run_stage: Callable, restart: bool = False) -> dict[str, StageRun]:
    """Run the stages in order, skipping or resuming what an earlier run with the same fingerprints finished.

    `run_stage(stage, logging_dir, resume) -> (stats, seconds)` runs one stage with the chosen executor. A stage is
    recorded done when every task left its completion marker; one whose tasks were only submitted (Slurm) gets the
    status "submitted" and is checked again on the next run. Without `restart`, a stage record of another command
    or input stops everything before any work (StageMismatchError); with it, that stage and every stage after it
    start afresh, their folders emptied.
    """
    records = Path(work) / "stages"
    records.mkdir(parents=True, exist_ok=True)
    if not restart:
        check_same_run(stages, work)
    previous, runs = "", {}
    for stage in stages:
        fingerprint = stage_fingerprint(stage, previous)
        record_path, logging_dir = records / f"{stage.name}.json", Path(work) / "logs" / stage.name
        record = _read_record(record_path)
        fields = {"name": stage.name, "fingerprint": fingerprint, "tasks": stage.tasks,
                  "config": json.loads(json.dumps(stage.config, sort_keys=True, default=str))}
        if record.get("fingerprint") == fingerprint and record.get("done"):
            runs[stage.name] = StageRun(stage.name, "skipped")
        else:
            resume = record.get("fingerprint") == fingerprint
            if not resume:
                for folder in [*stage.outputs, logging_dir]:
                    shutil.rmtree(folder, ignore_errors=True)
                atomic_write(record_path, json.dumps({**fields, "done": False}))
            stats, seconds = run_stage(stage, str(logging_dir), resume)
            if all((logging_dir / "completions" / f"{rank:05d}").exists() for rank in range(stage.tasks)):
                atomic_write(record_path, json.dumps({**fields, "done": True}))
                runs[stage.name] = StageRun(stage.name, "resumed" if resume else "ran", stats, seconds)
            else:  # submitted to a scheduler (Slurm): finished later, checked by the next run
                runs[stage.name] = StageRun(stage.name, "submitted", stats, seconds)
        previous = fingerprint
    return runs


class StageReader(JsonlReader):
    """Task `rank` reads `<rank>.jsonl.zst` that task `rank` of the previous stage wrote (nothing if it wrote none:
    datatrove's writers create no file for a task without documents)."""

    name = "📂 Stage reader"

    def __init__(self, folder, **kwargs):
        super().__init__(str(folder), compression="zstd", add_file_path=False, **kwargs)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        name = STAGE_FILE.format(rank=rank)
        if self.data_folder.isfile(name):
            for document in self.read_file(name):
                self.update_doc_stats(document)
                yield document


class SplitByRank(PipelineStep):
    """Several independent jobs in one executor run: ranks [0, n0) run job 0 as its ranks 0..n0-1, the next n1
    ranks run job 1, and so on (each job is a list of steps, or one step, that reads no documents)."""

    name = "🔀 Split by rank"
    type = "🔀 - ROUTER"

    def __init__(self, jobs: list[tuple[list, int]]):
        super().__init__()
        self.jobs = [(job if isinstance(job, list) else [job], tasks) for job, tasks in jobs]

    @property
    def total_tasks(self) -> int:
        return sum(tasks for _, tasks in self.jobs)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if world_size != self.total_tasks:
            raise ValueError(f"{self.name}: run with {self.total_tasks} tasks, not {world_size}")
        offset = 0
        for steps, tasks in self.jobs:
            if rank < offset + tasks:
                pipelined = data
                for step in steps:
                    pipelined = step(pipelined, rank - offset, tasks)
                if pipelined is not None:
                    for _ in pipelined:
                        pass
                break
            offset += tasks
        return
        yield
