"""A real multi-node Ray cluster on this one machine, for tests: `ray start --head` plus `ray start --address` per
extra node, each node on its own loopback address (127.0.100.I) with its own temp folder.

Ray binds several of its servers (GCS, raylet, object manager, dashboard agent, client server) to 0.0.0.0 whatever
--node-ip-address says, and rewrites 127.0.0.1 to the machine's address. So the whole cluster, and every command
that talks to it (`run()`), lives in a network namespace of our own whose only interface is loopback: nothing can
listen on or talk to an address outside 127.0.0.0/8. The dashboard (and with it the job-submission API) is off,
and the cluster requires a token generated for it (RAY_AUTH_MODE=token). stop() ends exactly the process groups it
started (never `ray stop`, which kills every Ray process of the machine by name).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.loopback_netns import LoopbackNetns

HEAD_PORT = 6379  # our own network namespace: no other cluster can hold it


class LocalRay:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        self.addresses = [f"127.0.100.{i}" for i in range(1, nodes + 1)]
        self.cpus_per_node = cpus_per_node
        self.address = f"{self.addresses[0]}:{HEAD_PORT}"
        self.netns = LoopbackNetns(f"gptstack-ray-{os.getpid()}", tuple(self.addresses))
        # short: Ray's unix socket paths below it must stay under 107 characters
        self.dir = Path(tempfile.mkdtemp(prefix="gptray-", dir="/tmp"))
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self._groups: list[subprocess.Popen] = []

    def in_netns(self, cmd: list[str]) -> list[str]:
        return self.netns.wrap(cmd)

    def run(self, *cmd: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        """A command inside the cluster's network namespace, with the cluster's token."""
        return subprocess.run(self.in_netns(list(cmd)), capture_output=True, text=True, check=check,
                              env=self.env, timeout=timeout, **kwargs)

    def start(self) -> "LocalRay":
        self.netns.create()
        for index, address in enumerate(self.addresses):
            role = ["--head", "--port", str(HEAD_PORT), "--include-dashboard=false"] if index == 0 else [
                "--address", self.address]
            log = open(self.dir / f"node{index + 1}.log", "w")
            # --block: the node lives as long as this process group; its own session, to kill it as a group
            self._groups.append(subprocess.Popen(
                self.in_netns(["ray", "start", "--block", *role, "--node-ip-address", address,
                               "--num-cpus", str(self.cpus_per_node), "--num-gpus", "0", "--disable-usage-stats",
                               "--temp-dir", str(self.dir / f"node{index + 1}")]),
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True))
            self._wait_log(self.dir / f"node{index + 1}.log", "Ray runtime started", timeout=90)
        self._wait_nodes(len(self.addresses))
        return self

    def _wait_log(self, log: Path, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in log.read_text(errors="replace"):
                return
            if any(group.poll() is not None for group in self._groups):
                raise RuntimeError(f"a Ray node exited while starting: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"Ray node did not start in {timeout}s: {log.read_text(errors='replace')[-2000:]}")

    def _wait_nodes(self, count: int, timeout: float = 60) -> None:
        script = ("import ray, time\n"
                  f"ray.init(address={self.address!r}, log_to_driver=False)\n"
                  f"deadline = time.time() + {timeout}\n"
                  f"while sum(n['Alive'] for n in ray.nodes()) < {count} and time.time() < deadline:\n"
                  "    time.sleep(0.3)\n"
                  "print(sum(n['Alive'] for n in ray.nodes()))\n")
        alive = self.run(sys.executable, "-c", script, timeout=timeout + 60).stdout.split()[-1]
        if int(alive) < count:
            raise RuntimeError(f"only {alive} of {count} Ray nodes joined; logs in {self.dir}")

    def listening(self) -> list[tuple[str, str]]:
        """(local address:port, process) of every listening TCP socket in the cluster's namespace."""
        lines = self.run("ss", "-ltnpH").stdout.splitlines()
        return [(line.split()[3], line.split()[5] if len(line.split()) > 5 else "") for line in lines]

    def command_lines(self) -> list[str]:
        """The command lines of every process of our Ray nodes (their process groups)."""
        groups, lines = {group.pid for group in self._groups}, []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and os.getpgid(int(proc.name)) in groups:
                    lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (OSError, ProcessLookupError):
                continue
        return lines

    def interfaces(self) -> list[str]:
        return self.run("ip", "-o", "addr", "show").stdout.split("\n")

    def stop(self) -> None:
        for group in reversed(self._groups):
            if group.poll() is None:
                try:
                    os.killpg(group.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 3
        for group in self._groups:
            try:
                group.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # Ray's daemons outlive `ray start` on SIGTERM for a while: the whole group goes
                os.killpg(group.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            group.wait()
        self.netns.delete()
        shutil.rmtree(self.dir, ignore_errors=True)
