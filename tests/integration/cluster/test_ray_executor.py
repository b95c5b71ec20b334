"""`pipeline.prepare --executor ray` on a real two-node Ray cluster (tests/ray_cluster.py): the same shards as the
local executor, byte for byte, and a cluster that listens on loopback only, without a dashboard."""
import ipaddress
import json
import sys
from pathlib import Path

import pytest

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support.ray_cluster import LocalRay
from tests.support import REPO_ROOT

OPTIONS = ["--tasks", "4", "--val-tokens", "3000", "--shard-tokens", "20000"]


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = LocalRay(nodes=2, cpus_per_node=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def web_files(shared_data, tmp_path_factory) -> Path:
    """240 real Common Crawl pages (dclm's labelled sample, with a planted exact duplicate) in four jsonl files."""
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f][:240]
    texts[200] = texts[3]
    folder = tmp_path_factory.mktemp("web")
    for part in range(4):
        (folder / f"part{part}.jsonl").write_text(
            "".join(json.dumps({"text": t, "id": f"doc{part * 60 + i}"}) + "\n"
                    for i, t in enumerate(texts[part * 60:(part + 1) * 60])))
    return folder


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {entry["file"]: (folder / entry["file"]).read_bytes() for entry in read_manifest(folder)["shards"]}


def test_ray_cluster_gives_the_local_executors_shards_and_listens_on_loopback_only(ray_cluster, web_files,
                                                                                   tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    prepare_main(["--input", str(web_files), "--output", str(local), *OPTIONS])
    result = ray_cluster.run(sys.executable, "-m", "pipeline.prepare", "--executor", "ray", "--ray-address",
                             ray_cluster.address, "--input", str(web_files), "--output", str(on_ray), *OPTIONS,
                             cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    manifest = read_manifest(on_ray)
    # 2 nodes x 1 CPU: two tasks at a time, hence one on each node
    assert manifest["executor"] == {"name": "ray", "tasks": 4, "workers": 2}
    assert manifest["dedup"]["removed"]["exact"] == 1
    assert shard_bytes(on_ray) == shard_bytes(local)  # byte-identical shards, val and train
    assert len(shard_bytes(local)) >= 3
    for stage in ("read", "dedup-signatures", "dedup-buckets", "shuffle-sort", "tokenize"):
        assert (on_ray / "logs" / stage / "stats.json").exists()  # Ray wrote each stage's merged statistics

    # Nothing listens outside loopback: the namespace has no other interface, the dashboard (and with it the job
    # submission API, ShadowRay) is off.
    addresses = [line.split()[3] for line in ray_cluster.interfaces() if line.split()[2:3] == ["inet"]]
    assert addresses and all(ipaddress.ip_interface(a).ip.is_loopback for a in addresses), addresses
    listening = ray_cluster.listening()
    assert any(port.endswith(":6379") for port, _ in listening), listening  # (the check sees Ray's GCS)
    assert not any(port.endswith(":8265") for port, _ in listening), listening
    processes = ray_cluster.command_lines()
    assert any("raylet" in line for line in processes)  # (the check sees Ray's processes)
    # Ray still runs a headless dashboard process for usage statistics (a metrics endpoint): no web UI, and no
    # job-submission module, which is what ShadowRay abuses
    headless = [line for line in processes if "dashboard/dashboard.py" in line]
    assert all("--disable-frontend" in line and "--modules-to-load=UsageStatsHead " in line for line in headless)


def test_ray_address_without_a_cluster_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(["--executor", "ray", "--ray-address", "127.0.0.1:9", "--limit", "10",
                      "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: --ray-address 127.0.0.1:9: cannot connect to a Ray cluster")
