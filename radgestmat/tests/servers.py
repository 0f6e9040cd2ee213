"""Real servers started by the ops tests, each on a free port of 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(tmp_path, password: str | None = None) -> Iterator[tuple[subprocess.Popen, int]]:
    """A throwaway redis-server (with ``requirepass`` when a password is given); fails (never skips) when
    redis-server is not installed."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
        + (["--requirepass", password] if password else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: redis.Redis(port=port, password=password, socket_connect_timeout=0.2).ping(),
            what=f"redis on {port}",
        )
        yield proc, port
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, *, what: str, timeout: float = 20.0):
    """Poll ``predicate`` until it returns something truthy without raising; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001  not up yet
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up within {timeout} s (last error: {last_error!r})")
