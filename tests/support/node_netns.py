"""A network namespace that looks like a cluster node: loopback, one network interface, and a host name that
resolves to that interface's address (as a cluster node's name resolves to its NIC's).

Inside it, a server that binds "every interface" or "the host name's address" shows a non-loopback address, which
on this machine (whose name resolves to 127.0.0.1) it would not: so a test can tell a socket pinned to loopback
from one that is not. The interface is one end of a veth pair kept inside the namespace (nothing outside can
reach it); the host name is set in a UTS namespace of the command's own, to the address itself (resolved without
/etc/hosts).
"""
from __future__ import annotations

import atexit
import os
import subprocess

from tests.support.loopback_netns import LoopbackNetns

NODE_ADDRESS = "10.99.0.1"  # a private address, on an interface no packet leaves


class NodeNetns(LoopbackNetns):
    def __init__(self, name: str):
        super().__init__(name, addresses=())

    def create(self) -> "NodeNetns":
        super().create()
        for command in (["ip", "link", "add", "eth-node", "type", "veth", "peer", "name", "eth-peer"],
                        ["ip", "addr", "add", f"{NODE_ADDRESS}/24", "dev", "eth-node"],
                        ["ip", "link", "set", "eth-node", "up"], ["ip", "link", "set", "eth-peer", "up"]):
            subprocess.run(super().wrap(command), check=True)
        return self

    def wrap(self, cmd: list[str]) -> list[str]:
        """cmd inside the namespace, with the host name NODE_ADDRESS (nsenter, unshare and sh exec: the pid is the
        command's own)."""
        return super().wrap(["unshare", "--uts", "--", "sh", "-c", f'hostname {NODE_ADDRESS} && exec "$@"', "sh",
                             *cmd])


_shared: NodeNetns | None = None


def node_netns() -> NodeNetns:
    """One such namespace per test process, deleted when it exits."""
    global _shared
    if _shared is None:
        _shared = NodeNetns(f"gptstack-node-{os.getpid()}").create()
        atexit.register(_shared.delete)
    return _shared
