"""`make run` (honcho) starts the worker and beat through deploy/local/keep-running: one that exits
is started again (as systemd's Restart=always does), and stopping the stack still stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
KEEP_RUNNING = BASE_DIR / "deploy" / "local" / "keep-running"


def procfile_roles() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_the_procfile_restarts_a_worker_or_beat_that_exits():
    roles = procfile_roles()
    assert roles["worker"].startswith("deploy/local/keep-running celery -A radgestmat worker ")
    assert roles["beat"].startswith("deploy/local/keep-running celery -A radgestmat beat ")


def test_a_command_that_exits_is_started_again_until_the_loop_is_stopped(tmp_path):
    runs = tmp_path / "runs"
    loop = subprocess.Popen(
        [str(KEEP_RUNNING), "sh", "-c", f"echo run >> {runs}; exit 1"],
        env={**os.environ, "KEEP_RUNNING_DELAY": "0.2"},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not runs.exists() or len(runs.read_text().split()) < 3):
        time.sleep(0.1)
    loop.send_signal(signal.SIGTERM)
    status = loop.wait(10)

    assert len(runs.read_text().split()) >= 3
    assert status == 0
    assert "exited with status 1; starting it again" in loop.stderr.read()


def test_stopping_the_loop_stops_the_command(tmp_path):
    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    loop = subprocess.Popen(
        [
            str(KEEP_RUNNING),
            "sh",
            "-c",
            f"trap 'touch {marker}; exit 0' TERM; touch {ready}; while :; do sleep 0.1; done",
        ],
    )
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.send_signal(signal.SIGTERM)

    assert loop.wait(10) == 0
    assert marker.exists()
