"""The network drills' machine: a namespace that reaches the host's servers through a router, until cut.

Needs root (`ip netns`); skipped otherwise, which CI (root) counts as a failure."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from radgestmat.testing.netns import Machine, netns_unavailable

REASON = netns_unavailable()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "network namespaces available")


def listener(host: str) -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind((host, 0))
    server.listen()

    def serve():
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            client.sendall(b"hello")
            client.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def reaches(machine: Machine, host: str, port: int) -> bool:
    """Whether a client inside the machine connects to host:port and reads the greeting within 2 s."""
    code = f"import socket; s = socket.create_connection(({host!r}, {port}), timeout=2); print(s.recv(5).decode())"
    run = subprocess.run(machine.wrap([sys.executable, "-c", code]), capture_output=True, text=True, timeout=20)
    return run.stdout.strip() == "hello"


def test_the_machine_reaches_the_host_until_cut_and_a_port_cut_spares_the_other_ports():
    with Machine(subnet=251) as machine:
        first, port = listener(machine.host_address)
        second, other_port = listener(machine.host_address)
        try:
            assert reaches(machine, machine.host_address, port)
            machine.cut()
            assert not reaches(machine, machine.host_address, port)
            machine.mend()
            assert reaches(machine, machine.host_address, port)
            machine.cut(ports=(port,))
            assert not reaches(machine, machine.host_address, port)
            assert reaches(machine, machine.host_address, other_port)
            machine.mend()
        finally:
            first.close()
            second.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert machine.netns not in listed and machine.router not in listed
