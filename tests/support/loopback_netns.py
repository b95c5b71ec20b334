"""A network namespace whose only interface is loopback, for tests whose servers listen on every interface.

torch.distributed's TCPStore (the rendezvous of torchrun, the deepspeed launcher and env://), Slurm's daemons and
Ray's bind to all interfaces whatever address they are given. Run inside such a namespace they can reach, and be
reached at, 127.0.0.0/8 alone. `nsenter --net` (unlike `ip netns exec`) keeps /sys mounted, which slurmd needs.
"""
from __future__ import annotations

import atexit
import os
import subprocess


class LoopbackNetns:
    def __init__(self, name: str, addresses: tuple[str, ...] = ("127.0.100.1",)):
        self.name = name
        # Extra 127.x addresses on lo; any address other than 127.0.0.1 also makes glibc's getaddrinfo
        # (AI_ADDRCONFIG) believe IPv4 is configured, which Slurm needs to resolve anything.
        self.addresses = addresses

    def create(self) -> "LoopbackNetns":
        if os.geteuid() != 0:
            raise RuntimeError("tests that start servers need root, to keep them in a loopback-only network namespace")
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(self.wrap(["ip", "link", "set", "lo", "up"]), check=True)
        for address in self.addresses:
            subprocess.run(self.wrap(["ip", "addr", "add", f"{address}/32", "dev", "lo"]), check=True)
        return self

    def wrap(self, cmd: list[str]) -> list[str]:
        """cmd, run inside the namespace (nsenter execs it: the process id is the command's own)."""
        return ["nsenter", f"--net=/run/netns/{self.name}", "--", *cmd]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


_shared: LoopbackNetns | None = None


def shared_netns() -> LoopbackNetns:
    """One namespace for this test process's multi-rank training runs, deleted when the process exits."""
    global _shared
    if _shared is None:
        _shared = LoopbackNetns(f"gptstack-train-{os.getpid()}").create()
        atexit.register(_shared.delete)
    return _shared
