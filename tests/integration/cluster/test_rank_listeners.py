"""What a single-machine 2-rank training run listens on, beyond loopback (cluster/ports.py reads it from /proc).

The runs happen where the host name resolves to a network interface's address, as on a cluster node
(tests/support/node_netns.py): there gloo, left alone, listens on that address, and torch's TCPStore on every
interface. What the docs promise (docs/clusters.md, "Which ports are open"):
- the deepspeed launcher: nothing beyond loopback (rank 0 serves the rendezvous on 127.0.0.1, gloo is pinned to lo);
- torchrun: the ranks listen on loopback only; its agent's rendezvous store listens on every interface, at the
  --master-port, for as long as the run lasts (torch gives torchrun no option to bind it elsewhere).
Real DeepSpeed over gloo on CPU, two steps each.
"""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.env import is_loopback
from cluster.ports import listening_ports
from tests.support.node_netns import node_netns
from tests.support.train import REPO_ROOT, TINY, descendants, free_port, train_env


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards  # tests/integration/conftest.py: read, never written


def sample_listeners(command: list[str], timeout: float = 300) -> tuple[dict[int, set], dict[int, str], str]:
    """Run `command` to its end, sampling every process of it: ({pid: {(address, port)}}, {pid: command line},
    output)."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=train_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    listening: dict[int, set] = {}
    command_lines: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            for pid in [process.pid] + descendants(process.pid):
                try:  # the latest: nsenter, unshare and sh exec the launcher under one pid ('' once it exited)
                    line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                command_lines[pid] = line or command_lines.get(pid, "")
                listening.setdefault(pid, set()).update(listening_ports(pid))
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.communicate()[0]
    assert process.returncode == 0, output[-3000:]
    return listening, command_lines, output


def run_args(shards: Path, run_dir: Path) -> list[str]:
    return [*TINY, "--set", "eval.every=0", "--data", str(shards), "--run-dir", str(run_dir), "--max-steps", "2"]


def ranks(command_lines: dict[int, str]) -> list[int]:
    """The trainer processes: python [-u] -m model.train ... (not the launchers, whose arguments name it too)."""
    return [pid for pid, line in command_lines.items() if re.match(r"\S*python[\d.]* (-u )?-m model\.train ", line)]


def test_torchrun_ranks_listen_on_loopback_and_its_agent_on_its_port(shards, tmp_path):
    port = free_port()
    command = node_netns().wrap([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes",
                                 "1", "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "model.train",
                                 *run_args(shards, tmp_path / "run")])
    listening, command_lines, output = sample_listeners(command)
    rank_pids = ranks(command_lines)
    assert len(rank_pids) == 2, command_lines
    for pid in rank_pids:
        assert listening.get(pid), "a rank was never seen listening (gloo): the sampling missed the run"
        assert all(is_loopback(address) for address, _ in listening[pid]), listening[pid]
    beyond = {(pid, address, p) for pid, found in listening.items() for address, p in found if not is_loopback(address)}
    agent = [pid for pid, line in command_lines.items() if "torch.distributed.run" in line]
    assert {(pid, p) for pid, _, p in beyond} == {(agent[0], port)}, beyond  # only the agent's store, at its port


def test_deepspeed_launcher_run_listens_on_loopback_only(shards, tmp_path):
    port = free_port()
    command = node_netns().wrap([sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
                                 "--master_addr", "127.0.0.1", "--master_port", str(port), "--module", "model.train",
                                 *run_args(shards, tmp_path / "run")])
    listening, command_lines, output = sample_listeners(command)
    rank_pids = ranks(command_lines)
    assert len(rank_pids) == 2, command_lines
    assert ("127.0.0.1", port) in set().union(*(listening.get(pid, set()) for pid in rank_pids))  # rank 0's store
    beyond = {(pid, address, p) for pid, found in listening.items() for address, p in found if not is_loopback(address)}
    assert beyond == set()
