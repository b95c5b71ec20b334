"""`gptstack eval` against lm-evaluation-harness on the same HF export, and on 2 ranks against 1 rank.

One tiny model (the session's tiny_run), 20 examples of 3 tasks (multiple choice, byte-normalised multiple choice,
Winogrande's partial scoring), 0-shot: cheap, yet every scoring path that decides a choice is compared."""
import json
import subprocess
import sys

import pytest

from bench.bench_eval import OFFLINE, compare, lm_eval_command, read_lm_eval, read_ours
from model.eval.lm_eval_tasks import write_task_folder
from tests.support import REPO_ROOT
from tests.support.loopback_netns import shared_netns
from tests.support.train import free_port, train_env

TASKS = ["copa", "hellaswag", "winogrande"]
LIMIT = 20


def _run(command, timeout=300):
    result = subprocess.run(command, cwd=REPO_ROOT, env={**train_env(), **OFFLINE}, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _ours(checkpoint, out, prefix=()):
    return [*prefix, "-m", "model.eval", "--checkpoint", str(checkpoint), "--suite", ",".join(TASKS),
            "--limit", str(LIMIT), "--shots", "0", "--batch-size", "8", "--device", "cpu", "--log-samples",
            "--output", str(out)]


@pytest.fixture(scope="module")
def one_rank(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-one-rank")
    _run([sys.executable, *_ours(tiny_run, out)])
    return out


def test_lm_eval_picks_the_same_choices_on_the_hf_export(tiny_run, one_rank, tmp_path):
    hf, tasks_dir = tmp_path / "hf", tmp_path / "tasks"
    _run([sys.executable, "-m", "model.convert", "--checkpoint", str(tiny_run), "--to-hf", str(hf)])
    write_task_folder(tasks_dir, TASKS)  # in-process: it only writes yamls (the CLI flag is in the unit tests)
    _run(lm_eval_command(hf, tasks_dir, TASKS, LIMIT, 0, 8, tmp_path / "lm", "cpu"))
    table = compare(TASKS, *read_lm_eval(tmp_path / "lm", TASKS), *read_ours(one_rank))
    for task, row in table.items():
        assert row["n"] == LIMIT, task
        assert row["same_choice"] == 1.0, (task, row)
        assert row["lm_eval"] == pytest.approx(row["ours"]), (task, row)
        assert row["max_loglikelihood_diff"] < 1e-3, (task, row)  # the same ids were scored, not just the picks


def test_two_ranks_give_the_numbers_of_one(one_rank, tiny_run, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    _run(shared_netns().wrap(_ours(tiny_run, tmp_path, prefix=torchrun)))
    single = json.loads((one_rank / "results.json").read_text())
    double = json.loads((tmp_path / "results.json").read_text())
    assert double["world_size"] == 2 and single["world_size"] == 1
    for task in TASKS:
        for key in ("accuracy", "stderr", "n", "by_normalisation"):
            assert double["tasks"][task][key] == pytest.approx(single["tasks"][task][key]), (task, key)
    # every example was scored once, by one of the ranks, and gathered for the samples file
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sorted((d["task"], d["index"]) for d in lines) == sorted((t, i) for t in TASKS for i in range(LIMIT))
