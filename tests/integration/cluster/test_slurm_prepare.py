"""Distributed preprocessing on a real two-node Slurm cluster (slurmctld + 2 slurmd on loopback, slurm_cluster.py):

(a) `pipeline.prepare --executor slurm` submits one job array per stage, each depending on the one before, and a
    last job that writes the shards: they are byte-identical to the local executor's;
(b) `sbatch --nodes=2 slurm/prepare.sh ...` starts a Ray head and a Ray worker on the two nodes (127.0.100.1/.2),
    runs prepare on that Ray cluster, gives the same shards, and leaves no Ray process behind.
"""
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support import REPO_ROOT

OPTIONS = ["--tasks", "3", "--no-dedup", "--val-tokens", "3000", "--shard-tokens", "20000"]


@pytest.fixture(scope="module")
def web_files(shared_data, tmp_path_factory) -> Path:
    """150 real Common Crawl pages (dclm's labelled sample) in three jsonl files."""
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f][:150]
    folder = tmp_path_factory.mktemp("web")
    for part in range(3):
        (folder / f"part{part}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                                          for t in texts[part * 50:(part + 1) * 50]))
    return folder


@pytest.fixture(scope="module")
def local_shards(web_files, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    prepare_main(["--input", str(web_files), "--output", str(out), *OPTIONS])
    return shard_bytes(out)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {entry["file"]: (folder / entry["file"]).read_bytes() for entry in read_manifest(folder)["shards"]}


def test_slurm_executor_chains_stage_jobs_and_writes_the_local_shards(slurm, web_files, local_shards, tmp_path):
    out = tmp_path / "out"
    submitted = slurm.run(sys.executable, "-m", "pipeline.prepare", "--executor", "slurm", "--time", "10",
                          "--input", str(web_files), "--output", str(out), *OPTIONS, check=False)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert "submitted to Slurm" in submitted.stdout and "prepare-finish" in submitted.stdout
    jobs = json.loads((out / ".prepare-work" / "slurm_jobs.json").read_text())
    assert list(jobs) == ["read", "shuffle-scatter", "shuffle-sort", "tokenize", "finish"]
    # each stage's array waits for the one before it (afterok), the finishing job for the last one
    for before, after in zip(jobs, list(jobs)[1:]):
        dependency = slurm.job(int(jobs[after]))["Dependency"]
        assert f"afterok:{jobs[before]}" in dependency or (  # (null) once the job before it has finished
            dependency == "(null)" and slurm.job(int(jobs[before])).get("JobState") == "COMPLETED"), dependency

    # the same command while the jobs are queued or running is refused: their tasks would run twice
    again = slurm.run(sys.executable, "-m", "pipeline.prepare", "--executor", "slurm", "--input", str(web_files),
                      "--output", str(out), *OPTIONS, check=False)
    assert again.returncode == 2 and "still queued or running" in again.stderr, again.stderr[-2000:]

    info = slurm.wait_state(int(jobs["finish"]), {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    log = next((out / "logs").glob("finish-*.out"), None)
    assert info["JobState"] == "COMPLETED", log.read_text()[-3000:] if log else info
    assert shard_bytes(out) == local_shards
    manifest = read_manifest(out)
    assert manifest["executor"] == {"name": "slurm", "tasks": 3, "workers": None}
    # every task ran as a Slurm array task (datatrove's own sbatch script), on the nodes of the cluster
    logs = "".join(path.read_text() for path in (out / "logs" / "tokenize" / "slurm_logs").glob("*.out"))
    assert sorted(re.findall(r"Processing done for rank=(\d+)", logs)) == ["0", "1", "2"]


def test_sbatch_prepare_sh_runs_ray_on_both_nodes_and_stops_it(slurm, web_files, local_shards, tmp_path, request):
    out, log = tmp_path / "out", tmp_path / "prepare.log"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rayjob-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    job = slurm.sbatch(f"--chdir={REPO_ROOT}", "--nodes=2", "--cpus-per-task=1", "--time=10", f"--output={log}",
                       str(REPO_ROOT / "slurm" / "prepare.sh"), "--input", str(web_files), "--output", str(out),
                       *OPTIONS, env={"VENV": str(Path(sys.executable).parents[1]), "RAY_TMP": str(ray_tmp)})
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert "Ray head on node1 (127.0.100.1:" in text and "all 2 Ray node(s) joined" in text
    assert "prepare finished; Ray stopped" in text
    assert shard_bytes(out) == local_shards
    assert read_manifest(out)["executor"] == {"name": "ray", "tasks": 3, "workers": 2}  # 2 nodes x 1 CPU
    time.sleep(1)
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, str(ray_tmp))]
    assert leftovers == []  # every Ray process of the job ended with it


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
