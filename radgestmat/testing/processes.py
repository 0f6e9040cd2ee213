"""Processes started for a test or a drill: stopping them, and the celery command lines as production runs them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from radgestmat.queues import WORKER_QUEUES


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the process's whole group (started with ``start_new_session=True``): a prefork worker's children too."""
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited
        os.killpg(process.pid, sig)


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM to the group, then SIGKILL to the group if the leader has not exited within ``timeout``."""
    signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(process, signal.SIGKILL)
        process.wait()


@dataclass
class Proc:
    """A process started in its own session, its output going to ``log``."""

    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""  # where a web process answers

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        if self.alive():
            signal_group(self.popen, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            stop_group(self.popen, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def celery_worker_command(
    name: str,
    *,
    pool: str = "prefork",
    concurrency: int = 2,
    queues: str = WORKER_QUEUES,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """`celery -A radgestmat worker` named ``name@host``, with this interpreter."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "radgestmat",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "-l",
        "INFO",
        *extra_args,
    ]


def celery_beat_command(scheduler: str, *, pidfile: str = "") -> list[str]:
    """`celery -A radgestmat beat` with ``scheduler``; an empty ``pidfile`` writes none (two beats may then run)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "radgestmat",
        "beat",
        "-l",
        "INFO",
        "--scheduler",
        scheduler,
        f"--pidfile={pidfile}",
    ]
