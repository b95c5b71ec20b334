"""Which TCP ports this process listens on, read from /proc (Linux), so a single-process run can say what it opens.

One process needs no rendezvous (model.engine joins an in-memory store, no TCPStore), but torch.distributed's gloo
backend still opens a listening socket on the loopback address for each process group it creates (the default
group and the one DeepSpeed makes): there is no gloo transport without one. They accept connections from this
process's own group only; nothing is reachable from other machines.
"""
from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path


def listening_ports(pid: int | str = "self") -> list[tuple[str, int]]:
    """(address, port) of each TCP socket of process `pid` in LISTEN state; [] where /proc is not there."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile (the listing's own descriptor is one)
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((_proc_address(address), int(port, 16)))
    return sorted(found)


def _proc_address(text: str) -> str:
    """/proc/net/tcp{,6}'s hex address -> 127.0.0.1, [::], [::ffff:127.0.0.1]: 32-bit words in host byte order."""
    raw = bytes.fromhex(text)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(raw)
    return str(address) if address.version == 4 else f"[{address}]"


def describe_listening() -> str | None:
    ports = listening_ports()
    if not ports:
        return None
    shown = ", ".join(f"{address}:{port}" for address, port in ports)
    return (f"ports: torch.distributed's gloo backend listens on {shown} (one per process group; loopback only, "
            f"for this process's own group: a single-process run has no rendezvous server)")
