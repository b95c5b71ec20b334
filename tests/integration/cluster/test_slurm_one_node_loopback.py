"""One-node jobs of slurm/prepare.sh and slurm/pretrain.sh listen on loopback alone.

A one-node job needs nothing reachable from outside. Ray's servers (GCS, raylet, object manager, workers, agents,
metrics) listen on every interface unless the node's address is 127.0.0.1, so prepare.sh gives Ray that address;
pretrain.sh sets MASTER_ADDR=127.0.0.1, so rank 0 serves the rendezvous on loopback (model/engine.py) and gloo
stays there (cluster/env.py). Every listening socket in the cluster's namespace is sampled while a job runs
(Slurm's own daemons and srun listen on every interface by design and are left out).
"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pipeline.shards import read_manifest
from tests.support import REPO_ROOT
from tests.support.train import TINY, make_shards

SLURM_PROCESSES = ("slurmctld", "slurmd", "slurmstepd", "srun")


def listeners(slurm) -> set[tuple[str, str]]:
    """(local address:port, process name) of every listening TCP socket in the Slurm cluster's namespace."""
    found = set()
    for line in slurm.run("ss", "-ltnpH", check=False).stdout.splitlines():
        fields = line.split()
        process = fields[5].split('"')[1] if len(fields) > 5 and '"' in fields[5] else "?"
        found.add((fields[3], process))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1") or host.startswith("::ffff:127.")


def sample_job(slurm, job: int, before: set, timeout: float = 300) -> set[tuple[str, str]]:
    """Every listening socket that appeared while `job` ran, except Slurm's own."""
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen |= listeners(slurm) - before
        if slurm.job(job).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        time.sleep(0.3)
    return {(address, process) for address, process in seen if process not in SLURM_PROCESSES}


def test_a_one_node_ray_job_listens_on_loopback_only(slurm, shared_data, tmp_path, request):
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f][:60]
    web = tmp_path / "web"
    web.mkdir()
    (web / "part0.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out, log = tmp_path / "out", tmp_path / "prepare.log"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rayone-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    before = listeners(slurm)
    job = slurm.sbatch(f"--chdir={REPO_ROOT}", "--nodes=1", "--cpus-per-task=1", "--time=10", f"--output={log}",
                       str(REPO_ROOT / "slurm" / "prepare.sh"), "--input", str(web), "--output", str(out),
                       "--tasks", "1", "--no-dedup", "--val-tokens", "2000", "--shard-tokens", "20000",
                       env={"VENV": str(Path(sys.executable).parents[1]), "RAY_TMP": str(ray_tmp)})
    ray_sockets = sample_job(slurm, job, before)
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=60)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert any(process == "gcs_server" for _, process in ray_sockets), ray_sockets  # the sampling saw Ray running
    assert [s for s in ray_sockets if not is_loopback(s[0])] == []
    assert "Ray head on node1 (127.0.0.1:" in text and "all 1 Ray node(s) joined" in text
    assert read_manifest(out)["executor"]["name"] == "ray"


def test_a_one_node_two_task_training_job_listens_on_loopback_only(slurm, tmp_path):
    shards = make_shards(tmp_path / "shards")
    run_dir, log = tmp_path / "run", tmp_path / "pretrain.log"
    before = listeners(slurm)
    job = slurm.sbatch(f"--chdir={REPO_ROOT}", "--job-name=onenode", f"--output={log}", "--nodes=1",
                       "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=10",
                       str(REPO_ROOT / "slurm" / "pretrain.sh"), "configs/tiny-cpu.yaml", *TINY[2:],
                       "--max-steps=3", "--set", "eval.every=0",
                       env={"RUN_DIR": str(run_dir), "DATA": str(shards), "DEVICE": "cpu",
                            "VENV": str(Path(sys.executable).parents[1])})
    sockets = sample_job(slurm, job, before)
    info = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=60)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert any(process.startswith("python") for _, process in sockets), sockets  # the sampling saw the ranks
    assert [s for s in sockets if not is_loopback(s[0])] == []
    assert "master 127.0.0.1" in text and "2 rank(s) (slurm)" in text
