"""`--executor` options of pipeline.prepare: default task and worker counts from the input files, and bad options
refused in one line before anything is written."""
import json

import pytest

from pipeline.read.corpora import SourceOptions, corpus_readers
from pipeline.runner.executors import ExecutorSettings, size_tasks
from pipeline.prepare import main as prepare_main
from pipeline.prepare import parse_args
from cluster.env import usable_cpus


def sized(*argv, input_folder=None) -> tuple[int, int]:
    args = parse_args([*argv, *(["--input", str(input_folder)] if input_folder else [])])
    readers = corpus_readers(args.corpus, SourceOptions(input=args.input), "/nonexistent/rejected")
    counts = size_tasks(ExecutorSettings(executor=args.executor), readers, args.tasks, args.workers, args.limit)
    return counts.tasks, counts.workers


def test_default_tasks_follow_the_input_files_and_workers_the_cpus(tmp_path):
    for i in range(5):
        (tmp_path / f"part{i}.jsonl").write_text(json.dumps({"text": f"document {i}"}) + "\n")
    cpus = usable_cpus()
    assert sized(input_folder=tmp_path) == (5, min(cpus, 5))  # one task per file; no idle local worker
    assert sized("--workers", "3", input_folder=tmp_path) == (5, 3)
    assert sized("--tasks", "8", input_folder=tmp_path) == (8, min(cpus, 8))
    assert sized("--limit", "100", input_folder=tmp_path) == (1, 1)  # the first 100 documents on any machine
    assert sized("--executor", "slurm", input_folder=tmp_path) == (5, -1)  # Slurm: no limit on tasks at once
    assert sized() == (cpus, cpus)  # the sample corpus is one file read by records: one task per worker


@pytest.mark.parametrize("argv,message", [
    (["--executor", "local", "--partition", "cpu"], "--partition, --time and --slurm-arg apply to --executor slurm"),
    (["--executor", "slurm", "--slurm-arg", "account"], "--slurm-arg 'account': expected KEY=VALUE"),
    (["--executor", "ray", "--cpus-per-task", "0"], "--cpus-per-task must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_executor_options_are_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare_main([*argv, "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {message}"), error
    assert not (tmp_path / "out").exists()


def test_help_explains_the_executor_options(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("--executor {local,ray,slurm}", "--ray-address", "--cpus-per-task", "--mem-per-cpu-gb",
                 "--partition", "--time", "--slurm-arg KEY=VALUE", "--restart", "sbatch --nodes=8 slurm/prepare.sh"):
        assert text in shown, text
