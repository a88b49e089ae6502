"""Ports for the local servers (streams/broker.py free_ports): below the
kernel's ephemeral ports, where no outgoing connection can take one between
its choice and the server's bind; never one that is listened on; never the
same twice in a process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams import broker


def test_ports_are_distinct_and_below_the_ephemeral_ones() -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = broker.free_ports(50) + [broker.free_port() for _ in range(50)]
    assert len(set(ports)) == 100
    assert all(broker.LOWEST_PICKED <= port < first for port in ports)


def _two_free_ports() -> int:
    """A port p with p and p + 1 both free now, below the ephemeral ones."""
    for port in range(broker.LOWEST_PICKED + 5_000, broker.LOWEST_PICKED + 9_000, 2):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two free ports in a row")


def test_a_port_listened_on_or_handed_out_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _two_free_ports()
    monkeypatch.setattr(broker, "LOWEST_PICKED", port)
    monkeypatch.setattr(broker, "_ephemeral_start", lambda: port + 2)  # two candidates
    monkeypatch.setattr(broker, "_handed", set())
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))  # on loopback only: taken all the same
        server.listen()
        assert broker.free_ports(1) == [port + 1]
        with pytest.raises(RuntimeError, match="no 1 free ports"):
            broker.free_port()  # port + 1 was handed out, port is listened on
