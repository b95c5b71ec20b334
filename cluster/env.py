"""Launcher environment -> torch.distributed rank, world size, local rank and rendezvous address.

Three ways of starting N copies of the trainer are supported, and each leaves different variables behind:

- ``torchrun`` and the ``deepspeed`` launcher set the torch.distributed variables themselves:
  RANK, WORLD_SIZE, LOCAL_RANK (+ LOCAL_WORLD_SIZE), MASTER_ADDR, MASTER_PORT.
- Slurm's ``srun`` starts one task per GPU and sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
  SLURM_JOB_NODELIST, SLURM_JOB_ID ... but no MASTER_*: the rendezvous host is then the first host of the
  allocation and the port is derived from the job id, so every task of the job computes the same pair and two
  jobs sharing a node do not collide.
- Nothing at all: a single process (rank 0 of 1) on 127.0.0.1.

The torch variables win when both are present (torchrun started inside an srun step), because they describe
the processes that actually form the group.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Mapping

from gptstack.errors import GPTStackError

DEFAULT_MASTER_PORT = 29500
# Ports derived from a Slurm job id fall in [SLURM_PORT_BASE, SLURM_PORT_BASE + SLURM_PORT_SPAN): above the
# registered range and below the Linux ephemeral range (32768+), so the kernel never hands one out to a client.
SLURM_PORT_BASE = 15000
SLURM_PORT_SPAN = 15000


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which Slurm and taskset narrow), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ClusterEnvError(GPTStackError):
    """The launcher environment is inconsistent (e.g. RANK >= WORLD_SIZE)."""


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    launcher: str  # "torchrun/deepspeed", "slurm" or "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def torch_environ(self) -> dict[str, str]:
        """The variables torch.distributed's env:// rendezvous (and deepspeed.init_distributed) read."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }

    @property
    def on_this_machine(self) -> bool:
        """The rendezvous is a loopback address: every rank runs on this machine (a single-node launch)."""
        return is_loopback(self.master_addr)

    def apply(self, environ: os._Environ | dict | None = None) -> None:
        """Export torch_environ() so that torch.distributed.init_process_group("env://") finds it.

        When every rank is on this machine, gloo's sockets are pinned to the loopback interface too
        (GLOO_SOCKET_IFNAME, unless already set): by default gloo listens on the address the host name resolves
        to, which on a cluster node is its network address, reachable from every other machine."""
        target = os.environ if environ is None else environ
        target.update(self.torch_environ())
        interface = loopback_interface() if self.on_this_machine else None
        if interface:
            target.setdefault("GLOO_SOCKET_IFNAME", interface)


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, how an IPv6 socket shows an IPv4 peer
    return (mapped or address).is_loopback


def loopback_interface() -> str | None:
    """The loopback interface's name (lo on Linux, lo0 on macOS), None if neither exists."""
    try:
        names = {name for _, name in socket.if_nameindex()}
    except (AttributeError, OSError):
        return None
    return next((name for name in ("lo", "lo0") if name in names), None)


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a Slurm hostlist such as ``gpu[01-03,07],login1`` into ``[gpu01, gpu02, gpu03, gpu07, login1]``.

    Handles zero-padded ranges and several bracket groups per name (``r[1-2]n[1-2]``), which is what
    ``scontrol show hostnames`` does; we parse it ourselves because scontrol is not on every compute node's PATH.
    """
    hosts: list[str] = []
    for item in _split_top_level(hostlist.strip()):
        if item:
            hosts.extend(_expand_one(item))
    return hosts


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ClusterEnvError(f"SLURM_JOB_NODELIST {text!r}: unbalanced brackets")
    parts.append("".join(current))
    return parts


def _expand_one(item: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", item)
    if match is None:
        return [item]
    prefix, suffix = item[: match.start()], item[match.end():]
    expanded = []
    for piece in match.group(1).split(","):
        if "-" in piece:
            low, high = piece.split("-", 1)
            width = len(low)
            if not (low.isdigit() and high.isdigit()) or int(high) < int(low):
                raise ClusterEnvError(f"SLURM_JOB_NODELIST item {item!r}: bad range {piece!r}")
            numbers = [str(n).zfill(width) for n in range(int(low), int(high) + 1)]
        else:
            numbers = [piece]
        for number in numbers:
            expanded.extend(_expand_one(prefix + number + suffix))
    return expanded


def slurm_master_port(job_id: str) -> int:
    """A port every task of one job agrees on, different for jobs whose ids differ by less than the span."""
    digits = re.sub(r"\D", "", job_id) or "0"
    return SLURM_PORT_BASE + int(digits) % SLURM_PORT_SPAN


def _int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ClusterEnvError(f"environment variable {name} is not set")
        return default
    try:
        return int(value)
    except ValueError:
        raise ClusterEnvError(f"environment variable {name}={value!r} is not an integer") from None


def _slurm_tasks_per_node(environ: Mapping[str, str], world_size: int) -> int:
    # SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE look like "4" or "4(x2)" or "4,2"; take this node's
    # count when uniform, else fall back to the whole world (only used for information).
    for name in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        value = environ.get(name, "")
        match = re.match(r"^(\d+)", value)
        if match:
            return int(match.group(1))
    return world_size


def resolve_dist_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Work out this process's place in the job from its environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world_size = _int(env, "WORLD_SIZE")
        result = DistEnv(
            rank=_int(env, "RANK"),
            world_size=world_size,
            local_rank=_int(env, "LOCAL_RANK", 0),
            local_world_size=_int(env, "LOCAL_WORLD_SIZE", world_size),
            master_addr=env.get("MASTER_ADDR") or "127.0.0.1",
            master_port=_int(env, "MASTER_PORT", DEFAULT_MASTER_PORT),
            launcher="torchrun/deepspeed",
        )
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        world_size = _int(env, "SLURM_NTASKS")
        if env.get("MASTER_ADDR"):
            master_addr = env["MASTER_ADDR"]
        else:
            nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
            if not nodelist:
                raise ClusterEnvError("Slurm task without SLURM_JOB_NODELIST and without MASTER_ADDR")
            master_addr = expand_hostlist(nodelist)[0]
        if env.get("MASTER_PORT"):
            master_port = _int(env, "MASTER_PORT")
        else:
            master_port = slurm_master_port(env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "0")
        result = DistEnv(
            rank=_int(env, "SLURM_PROCID"),
            world_size=world_size,
            local_rank=_int(env, "SLURM_LOCALID", 0),
            local_world_size=_slurm_tasks_per_node(env, world_size),
            master_addr=master_addr,
            master_port=master_port,
            launcher="slurm",
        )
    else:
        result = DistEnv(0, 1, 0, 1, env.get("MASTER_ADDR") or "127.0.0.1",
                         _int(env, "MASTER_PORT", DEFAULT_MASTER_PORT), "single")
    if not 0 <= result.rank < result.world_size:
        raise ClusterEnvError(f"rank {result.rank} is outside world size {result.world_size} ({result.launcher})")
    if not 0 <= result.local_rank < max(result.local_world_size, 1) and result.launcher != "slurm":
        raise ClusterEnvError(f"local rank {result.local_rank} >= local world size {result.local_world_size}")
    if not 0 < result.master_port < 65536:
        raise ClusterEnvError(f"MASTER_PORT {result.master_port} is not a valid TCP port")
    return result
