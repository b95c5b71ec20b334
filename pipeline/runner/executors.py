"""Where `pipeline.prepare` runs its stages (`--executor`): this machine, a Ray cluster, or Slurm job arrays.

Every stage is one run of a datatrove executor over the stage's tasks; the three differ only in who runs a task:

    local  datatrove's LocalPipelineExecutor: `--workers` processes on this machine; returns when all tasks ended
    ray    datatrove's RayPipelineExecutor on the cluster at `--ray-address` (`auto`: the one `ray start` made on
           this node); `--workers` tasks at a time, `--cpus-per-task` CPUs each; returns when all tasks ended
    slurm  datatrove's SlurmPipelineExecutor: one job array per stage, each depending on the one before
           (`afterok`), plus a last job that runs this same command again to write the shards; `prepare` returns
           as soon as everything is submitted

Whatever the executor, a task that finished wrote its completion marker (`logs/<stage>/completions/<task>`), so a
rerun of the same command skips it. Every folder must be on a filesystem all nodes share (the output folder, the
input files). The executors take `ExecutorSettings` (the `--executor` options) and `TaskCounts` (how many tasks and
how many at once, from `size_tasks`); a local or Ray stage runs under a progress bar (pipeline/runner/progress.py).
"""
import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.executor.slurm import SlurmPipelineExecutor

from cluster.env import usable_cpus
from gptstack.errors import GPTStackError, InputError
from gptstack.files import atomic_write
from pipeline.read.progress import PROGRESS_FOLDER, task_shares
from pipeline.runner.lifeline import mark_main_process
from pipeline.runner.progress import documents_written, run_with_progress
from pipeline.runner.stages import Stage
from pipeline.runner.tasklog import quiet_console, use_task_logger

EXECUTORS = ("local", "ray", "slurm")
MAX_DEFAULT_TASKS = 1000  # one task per input file by default, but not more (every task writes files per stage)
FINISHING_ENV = "GPTSTACK_PREPARE_FINISHING"  # set in the last Slurm job: resubmitting anything is then an error
SLURM_JOBS_FILE = "slurm_jobs.json"


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where it runs (see docs/clusters.md)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: processes on this machine; ray: tasks on a running Ray cluster (--ray-address); "
                            "slurm: one job array per stage, chained with dependencies, submitted from here "
                            "(default: local)")
    group.add_argument("--ray-address", default="auto",
                       help="Ray cluster to connect to: `auto` (the cluster started with `ray start` on this node, "
                            "e.g. by slurm/prepare.sh) or HOST:PORT of its head (default: auto)")
    group.add_argument("--cpus-per-task", type=int, default=1,
                       help="ray/slurm: CPUs reserved for each task; tokenization uses that many threads (default: 1)")
    group.add_argument("--mem-per-cpu-gb", type=float, default=2,
                       help="ray/slurm: memory reserved per CPU of a task, in GB (default: 2)")
    group.add_argument("--partition", help="slurm: partition of the jobs (default: the cluster's default partition)")
    group.add_argument("--time", help="slurm: time limit of each task, e.g. 4:00:00 (default: the partition's)")
    group.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="slurm: any other sbatch option for the jobs, e.g. --slurm-arg account=myproj "
                            "--slurm-arg qos=high (repeatable)")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how the stages run: the options of `add_executor_arguments`, checked when made."""

    executor: str = "local"  # one of EXECUTORS
    ray_address: str = "auto"
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2
    partition: str | None = None
    time: str | None = None
    slurm_args: tuple[str, ...] = ()  # "KEY=VALUE" sbatch options

    def __post_init__(self):
        if self.cpus_per_task < 1:
            raise InputError(f"--cpus-per-task must be at least 1, got {self.cpus_per_task}")
        if self.mem_per_cpu_gb <= 0:
            raise InputError(f"--mem-per-cpu-gb must be positive, got {self.mem_per_cpu_gb}")
        for item in self.slurm_args:
            if "=" not in item or not item.split("=", 1)[0].strip("-"):
                raise InputError(f"--slurm-arg {item!r}: expected KEY=VALUE, e.g. account=myproj")
        if self.executor != "slurm" and (self.partition or self.time or self.slurm_args):
            raise InputError("--partition, --time and --slurm-arg apply to --executor slurm only")


@dataclass(frozen=True)
class TaskCounts:
    tasks: int  # pieces the input is split into (every stage passing documents on runs this many)
    workers: int  # tasks running at the same time; -1: as many as Slurm has room for


def connect_ray(address: str) -> int:
    """Connect this process to the Ray cluster at `address` (once); returns the cluster's CPU count."""
    import ray

    if not ray.is_initialized():
        host, _, port = address.rpartition(":")
        if address != "auto" and port.isdigit():  # (ray.init itself retries an absent head for minutes)
            try:
                socket.create_connection((host, int(port)), timeout=10).close()
            except OSError as e:
                raise InputError(f"--ray-address {address}: cannot connect to a Ray cluster ({e.strerror or e}); "
                                 "start one with `ray start --head` (see docs/clusters.md) or run inside "
                                 "`sbatch slurm/prepare.sh`") from None
        try:
            # log_to_driver: task logs already go to logs/<stage>/logs/; configure_logging off keeps our output
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"--ray-address {address}: cannot connect to a Ray cluster ({first_line}); start one "
                             "with `ray start --head` (see docs/clusters.md) or run inside `sbatch slurm/prepare.sh`") from None
    return int(ray.cluster_resources().get("CPU", 0))


def input_file_count(readers: list) -> int | None:
    """How many input files the readers split between tasks; None when a reader splits records, not files."""
    if not all(isinstance(getattr(reader, "files", None), list) for reader in readers):
        return None
    return sum(len(reader.files) for reader in readers)


def size_tasks(settings: ExecutorSettings, readers: list, tasks: int | None = None, workers: int | None = None,
               limit: int | None = None) -> TaskCounts:
    """`tasks` (pieces of the input) and `workers` (tasks running at once), each the given value or its default.

    workers: local = this machine's CPUs; ray = the cluster's CPUs / --cpus-per-task; slurm = no limit (-1: Slurm
    runs as many array tasks as it has room for). tasks: one per input file (readers split files between tasks:
    more tasks would idle), at most MAX_DEFAULT_TASKS; for a reader that splits records (the sample corpus), one
    per worker; with a `limit` on documents, 1, so that a quick run takes the first N documents on any machine.
    """
    if workers is None:
        if settings.executor == "ray":
            workers = max(1, connect_ray(settings.ray_address) // settings.cpus_per_task)
        elif settings.executor == "slurm":
            workers = -1
        else:
            workers = usable_cpus()
    if tasks is None:
        if limit:
            tasks = 1
        else:
            files = input_file_count(readers)
            tasks = max(1, min(files if files is not None else workers, MAX_DEFAULT_TASKS))
    if settings.executor == "local":  # (a pool of idle processes costs seconds to start)
        workers = min(workers, tasks)
    return TaskCounts(tasks, workers)


def tokenizer_threads(settings: ExecutorSettings, workers: int) -> int:
    """tiktoken threads per tokenize task: the CPUs of a task."""
    if settings.executor == "local":
        return max(1, usable_cpus() // workers)
    return settings.cpus_per_task


def all_tasks_completed(logging_dir, tasks: int) -> bool:
    completions = Path(logging_dir) / "completions"
    return all((completions / f"{rank:05d}").exists() for rank in range(tasks))


def make_executor(steps: list, tasks: int, workers: int, logging_dir: str, resume: bool,
                  settings: ExecutorSettings = ExecutorSettings(), name: str = "stage", depends=None):
    """The one place that chooses how a stage runs: `settings.executor` (default local), `workers` tasks at a time
    (-1: no limit), skipping the tasks that have a completion marker when `resume`."""
    executor = settings.executor
    workers = tasks if workers == -1 and executor != "slurm" else workers
    if executor == "local":
        mark_main_process()  # its workers end if this process is killed (pipeline/runner/lifeline.py)
        return LocalStageExecutor(steps, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                     skip_completed=resume)
    if executor == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        connect_ray(settings.ray_address)
        return RayPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                   skip_completed=resume, cpus_per_task=settings.cpus_per_task,
                                   mem_per_cpu_gb=settings.mem_per_cpu_gb)
    return SlurmStageExecutor(
        steps, tasks=tasks, workers=workers, logging_dir=logging_dir, skip_completed=resume, time=settings.time,
        partition=settings.partition, cpus_per_task=settings.cpus_per_task, mem_per_cpu_gb=settings.mem_per_cpu_gb,
        job_name=f"prepare-{name}", qos=None, env_command=job_environment(), depends=depends,
        # a job whose dependency failed is cancelled instead of waiting forever
        sbatch_args={"kill-on-invalid-dep": "yes",
                     **dict(item.lstrip("-").split("=", 1) for item in settings.slurm_args)})


TOKENIZE_STAGE, SHUFFLE_OUTPUT_STAGE = "tokenize", "shuffle-sort"  # pipeline/prepare.py's and shuffle.py's names


@dataclass
class ExecutorFactory:
    """Makes and runs the executor of each stage; remembers the Slurm job of the stage before, which the next
    stage's jobs depend on."""

    settings: ExecutorSettings
    workers: int  # TaskCounts.workers
    work: Path
    documents: dict = field(default_factory=dict)  # stage name -> documents it will see when known (progress bars)
    submitted: list = field(default_factory=list)  # Slurm executors that launched jobs, in stage order

    def make(self, name: str, steps: list, tasks: int, logging_dir: str, resume: bool):
        workers = self.workers if self.workers == -1 else min(self.workers, tasks)
        return make_executor(steps, tasks, workers, logging_dir, resume, self.settings, name,
                             depends=self.submitted[-1] if self.submitted else None)

    def run_stage(self, stage: Stage, logging_dir: str, resume: bool) -> tuple[object, float]:
        """Run one stage (the `run_stage` of pipeline.runner.stages.run_stages) under a progress bar or, for Slurm,
        submit it and return at once. Returns (stats, seconds)."""
        executor = self.make(stage.name, stage.steps, stage.tasks, logging_dir, resume)
        if self.settings.executor == "slurm":
            return self.run(executor, stage.name, stage.tasks), 0.0
        quiet_console()  # this process's datatrove INFO lines (stage stats) go to the logs, not the console
        total = self.documents.get(stage.name)
        if total is None and stage.name == TOKENIZE_STAGE:  # it reads exactly what the shuffle wrote
            total = documents_written(Path(logging_dir).parent / SHUFFLE_OUTPUT_STAGE)
        return run_with_progress(executor, stage, total,
                                 lambda: self.run(executor, stage.name, stage.tasks),
                                 shares=report_read_progress(stage, logging_dir))

    def run(self, executor, name: str, tasks: int):
        """Run one stage; for Slurm, submit it. Raises when a local/Ray task failed."""
        if self.settings.executor != "slurm":
            stats = executor.run()
            if not all_tasks_completed(executor.logging_dir.path, tasks):
                done = len(list((Path(executor.logging_dir.path) / "completions").glob("*")))
                raise GPTStackError(f"stage {name}: {tasks - done} of {tasks} tasks failed; logs in "
                                    f"{executor.logging_dir.path}/logs; the same command resumes")
            return stats
        if os.environ.get(FINISHING_ENV) and executor.get_incomplete_ranks():
            raise GPTStackError(f"stage {name}: {len(executor.get_incomplete_ranks())} of {tasks} tasks did not "
                                f"finish (logs in {executor.logging_dir.path}/slurm_logs); run the same command "
                                "again to resubmit them")
        executor.run()  # submits the job array (nothing when every task is done)
        if executor.job_id not in (None, -1):
            self.submitted.append(executor)
            record_slurm_jobs(self.work, name, executor.job_id)
        return None


def report_read_progress(stage: Stage, logging_dir: str) -> list[int] | None:
    """Have the stage's file readers write how far they are (pipeline/read/progress.py) into the stage's logging
    folder; returns the bytes each task reads, the total of the read stage's bar (None: the bar counts tasks)."""
    readers = [step for step in stage.steps if hasattr(step, "progress_folder")]
    if not readers:
        return None
    folder = Path(logging_dir) / PROGRESS_FOLDER
    shutil.rmtree(folder, ignore_errors=True)  # (an interrupted run's numbers)
    for index, reader in enumerate(readers):
        reader.progress_folder, reader.progress_reader = str(folder), index
    return task_shares(readers, stage.tasks)


class LocalStageExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose tasks log through pipeline/runner/tasklog.py: a full disk stops the run with one
    line, not with the tracebacks of the failed write and of the task log that cannot be written either."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        use_task_logger()  # here: runs in the process that runs the task (a pool worker imports datatrove afresh)
        return super()._run_for_rank(rank, local_rank, node_rank)


class SlurmStageExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor without the sbatch lines of options left unset (--partition, --time): the
    cluster's defaults then apply."""

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        return {key: value for key, value in super().get_sbatch_args(max_array).items() if value is not None}


def job_environment() -> str:
    """Shell lines that give a Slurm job this Python environment and this checkout of the project."""
    lines = []
    if sys.prefix != sys.base_prefix:  # a virtual environment
        lines.append(f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}")
    repo = Path(__file__).resolve().parents[2]  # (this file is pipeline/runner/executors.py)
    lines.append(f"export PYTHONPATH={shlex.quote(str(repo))}${{PYTHONPATH:+:$PYTHONPATH}}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- Slurm jobs
def record_slurm_jobs(work: Path, stage: str, job_id) -> None:
    path = Path(work) / SLURM_JOBS_FILE
    jobs = json.loads(path.read_text()) if path.exists() else {}
    jobs[stage] = str(job_id)
    atomic_write(path, json.dumps(jobs))


def check_no_slurm_jobs_running(work: Path) -> None:
    """Refuse to start while jobs an earlier `--executor slurm` run submitted for this folder are still queued or
    running: resubmitting their tasks now would run them twice at the same time."""
    path = Path(work) / SLURM_JOBS_FILE
    if not path.exists():
        return
    jobs = json.loads(path.read_text())
    finishing = jobs.pop("finish", None) if os.environ.get(FINISHING_ENV) else None
    ids = sorted({job for job in jobs.values() if job != os.environ.get("SLURM_JOB_ID") and job != finishing})
    if not ids:
        return
    try:
        queued = subprocess.run(["squeue", "-h", "-o", "%A", "-j", ",".join(ids)], capture_output=True, text=True,
                                timeout=60).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return  # no Slurm here: nothing of ours can be running
    if queued:
        raise InputError(f"{work}: Slurm jobs {', '.join(sorted(set(queued)))} of an earlier submission of this "
                         "command are still queued or running; wait for them (squeue --me) or cancel them "
                         "(scancel), then run the command again")


def submit_finishing_job(settings: ExecutorSettings, argv: list[str], work: Path, after) -> str:
    """Submit the job that, once the last stage's jobs succeeded, runs this same command to write the shards."""
    command = shlex.join([sys.executable, "-m", "pipeline.prepare", *argv])
    script = "\n".join(["#!/bin/bash", job_environment(), f"cd {shlex.quote(os.getcwd())}",
                        f"export {FINISHING_ENV}=1", f"exec {command}", ""])
    log = Path(work) / "logs" / "finish-%j.out"
    options = ["--parsable", f"--dependency=afterok:{after.job_id}", "--job-name=prepare-finish",
               f"--output={log}", "--cpus-per-task=1", f"--mem-per-cpu={int(max(settings.mem_per_cpu_gb, 4))}G",
               "--kill-on-invalid-dep=yes"]
    options += [f"--partition={settings.partition}"] * bool(settings.partition)
    options += [f"--time={settings.time}"] * bool(settings.time)
    options += [f"--{item.lstrip('-')}" for item in settings.slurm_args]
    result = subprocess.run(["sbatch", *options], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise GPTStackError(f"sbatch refused the finishing job: {result.stderr.strip().splitlines()[-1:]}")
    job_id = result.stdout.strip().split(";")[0]
    record_slurm_jobs(work, "finish", job_id)
    return job_id


def report_submitted(executors: ExecutorFactory, argv: list[str]) -> dict:
    """--executor slurm: submit the job that writes the shards once the last stage succeeded, and say what was
    submitted."""
    work = executors.work
    finish = submit_finishing_job(executors.settings, argv, work, executors.submitted[-1])
    jobs = {executor.job_name: executor.job_id for executor in executors.submitted}
    print("\nsubmitted to Slurm: " + ", ".join(f"{name} {job}" for name, job in jobs.items())
          + f", then prepare-finish {finish} (writes the shards to {work.parent}/)")
    print(f"  each stage's jobs start when the stage before succeeded; follow with `squeue --me`; logs in {work}/logs/"
          f"\n  interrupted or failed? run the same command again: finished tasks are skipped")
    return {"submitted": {**jobs, "prepare-finish": finish}}
