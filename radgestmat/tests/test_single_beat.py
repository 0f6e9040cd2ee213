"""Two real beat processes on one Redis: `manage.py check` notices, and stops complaining once one is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from radgestmat.testing.net import wait_until
from radgestmat.testing.processes import celery_beat_command
from radgestmat.testing.processes import stop_process as stop
from radgestmat.testing.redis import redis_server

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_beat_is_reported_by_manage_py_check(tmp_path):
    with redis_server(tmp_path) as (_, redis_port):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_SETTINGS"))}
        env.update(
            DEBUG="1",
            DATABASE_URL=f"sqlite:///{tmp_path / 'beat.sqlite3'}",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        )
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)

        def check() -> str:
            result = subprocess.run([*manage, "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            return result.stdout + result.stderr

        def beat(name: str) -> subprocess.Popen:
            return subprocess.Popen(
                celery_beat_command("django_celery_beat.schedulers:DatabaseScheduler"),
                cwd=ROOT,
                env=env,
                stdout=(tmp_path / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT,
            )

        first = beat("first")
        second = None
        try:
            wait_until(lambda: "radgestmat.W020" not in check() and _live(redis_port) == 1, what="first beat heartbeat")
            second = beat("second")
            output = wait_until(
                lambda: next((out for out in [check()] if "radgestmat.W020" in out), None),
                what="second beat noticed",
                timeout=60,
            )
            assert "2 celery beat processes seem to be running" in output

            stop(second)  # SIGTERM: the beat forgets its heartbeat on the way out
            wait_until(lambda: "radgestmat.W020" not in check(), what="warning gone after stopping a beat")
        finally:
            stop(first)
            if second is not None:
                stop(second)


def _live(redis_port: int) -> int:
    import time

    import redis

    from radgestmat.beat_registry import live_beats

    return len(live_beats(redis.Redis(port=redis_port), time.time()))
