"""A rendezvous on a loopback address keeps gloo on loopback too (cluster/env.py), and /proc's addresses read right."""
import socket

from cluster.env import is_loopback, resolve_dist_env
from cluster.ports import listening_ports


def test_loopback_addresses():
    for host in ("127.0.0.1", "127.0.100.1", "localhost", "::1", "[::1]", "[::ffff:127.0.0.1]"):
        assert is_loopback(host), host
    for host in ("10.0.0.1", "gpu01", "0.0.0.0", "[::]", "::ffff:10.0.0.1"):
        assert not is_loopback(host), host


def test_gloo_is_pinned_to_loopback_when_every_rank_is_on_this_machine():
    environ = {}
    resolve_dist_env({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}).apply(environ)
    assert environ["GLOO_SOCKET_IFNAME"] == "lo"
    mine = {"GLOO_SOCKET_IFNAME": "eth1"}  # the user's choice wins
    resolve_dist_env({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost"}).apply(mine)
    assert mine["GLOO_SOCKET_IFNAME"] == "eth1"
    several_nodes = {}  # ranks on other machines must reach this one: gloo stays on the network
    resolve_dist_env({"RANK": "0", "WORLD_SIZE": "8", "MASTER_ADDR": "gpu01"}).apply(several_nodes)
    assert "GLOO_SOCKET_IFNAME" not in several_nodes


def test_listening_ports_reads_ipv4_and_ipv6_addresses():
    sockets = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::1"),
                         (socket.AF_INET6, "::")):
        s = socket.socket(family)
        s.bind((host, 0))
        s.listen()
        sockets.append(s)
    try:
        found = set(listening_ports())
        shown = {"127.0.0.1": "127.0.0.1", "0.0.0.0": "0.0.0.0", "::1": "[::1]", "::": "[::]"}
        for s in sockets:
            host, port = s.getsockname()[:2]
            assert (shown[host], port) in found, (host, port, found)
    finally:
        for s in sockets:
            s.close()
