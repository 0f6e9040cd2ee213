"""A throwaway redis-server on a free port of 127.0.0.1 (and of other local addresses, for a drill's namespaced machine)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from radgestmat.testing.net import ServerError, free_port, port_open, wait_until
from radgestmat.testing.processes import stop_process


def redis_binary() -> str:
    """The redis-server binary; ServerError (a test fails, never skips) when it is not installed."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ServerError("redis-server is not installed (apt-get install redis-server)")
    return binary


class RedisServer:
    """redis-server without persistence (with ``requirepass`` when a password is given); a restart comes
    back on the same port, empty."""

    def __init__(self, workdir: Path, *, password: str | None = None, bind: tuple[str, ...] = ("127.0.0.1",)):
        self.binary = redis_binary()
        self.workdir = Path(workdir)
        self.password = password
        self.bind = bind  # the addresses it listens on (the next start takes a change); `url` names 127.0.0.1
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                *self.bind,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ]
            + (["--requirepass", self.password] if self.password else [])
            # Without a password Redis answers only loopback clients unless told otherwise.
            + (["--protected-mode", "no"] if set(self.bind) - {"127.0.0.1"} else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2).ping(),
            what=f"redis-server on port {self.port} to answer",
            error=ServerError,
        )
        return self

    def url_at(self, host: str) -> str:
        """The URL through another of the ``bind`` addresses."""
        return self.url.replace("127.0.0.1", host, 1)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        wait_until(
            lambda: not port_open(self.port), what=f"redis-server on port {self.port} to stop", error=ServerError
        )

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@contextmanager
def redis_server(tmp_path: Path, password: str | None = None) -> Iterator[tuple[subprocess.Popen, int]]:
    """A RedisServer for one test: yields its process and port, stopped afterwards."""
    server = RedisServer(tmp_path, password=password)
    try:
        server.start()
        assert server.process is not None
        yield server.process, server.port
    finally:
        server.destroy()
