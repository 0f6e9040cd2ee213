"""Ports on 127.0.0.1 and waiting for something to happen."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ServerError(RuntimeError):
    """A server or process could not start or stop: the message says which and what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    predicate: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.1,
    error: type[Exception] = AssertionError,
) -> T:
    """Poll ``predicate`` until it returns something truthy without raising, and return that.

    After ``timeout`` seconds raise ``error`` (AssertionError, so that a test fails; the bench
    passes its StackError), naming ``what`` and the predicate's last exception.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - whatever it raises, it is not there yet
            last_error = exc
        time.sleep(interval)
    raise error(f"{what} did not happen within {timeout:.0f} s (last error: {last_error!r})")
