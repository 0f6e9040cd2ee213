"""`manage.py run_scheduler`: prints the jobs, runs beat in the foreground, refuses a second copy, stops on --stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, env, **kwargs):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_run_scheduler_prints_its_jobs_runs_once_and_stops(tmp_path):
    pidfile = tmp_path / "beat.pid"
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'beat.sqlite3'}",
        "SCHEDULER_PIDFILE": str(pidfile),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    assert manage("migrate", "--noinput", env=env).returncode == 0
    log = (tmp_path / "beat.log").open("w+")
    beat = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for(pidfile.exists, 60), f"beat never wrote its pidfile:\n{Path(log.name).read_text()}"
        output = Path(log.name).read_text()
        # The spec's "Command Reference" output, frequencies read from the stored beat entries.
        assert "✓ Scheduler started successfully" in output
        assert "✓ 7 jobs registered" in output
        assert "Registered Jobs:" in output
        assert "  - check_court_terme_reminders: Every 30 min" in output
        assert "  - check_moyen_terme_reminders: Every 12 hours" in output
        assert "  - check_long_terme_reminders: Daily @ 8:00 AM" in output
        assert "  - check_overdue_materials: Every 15 min" in output
        assert "  - cleanup_old_notifications: Daily @ 2:00 AM" in output
        assert "✓ Scheduler is running. Press Ctrl+C to stop." in output
        assert int(pidfile.read_text()) == beat.pid

        second = manage("run_scheduler", env=env)
        assert second.returncode != 0  # the pidfile: one beat per pidfile
        assert second.stderr.strip().splitlines()[-1] == (
            f"CommandError: a scheduler is already running (pid {beat.pid}, {pidfile}): exactly one may run"
        )

        stop = manage("run_scheduler", "--stop", env=env)
        assert stop.returncode == 0, stop.stderr
        assert f"pid {beat.pid}" in stop.stdout
        assert beat.wait(20) is not None
        assert not pidfile.exists()
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait(10)
        log.close()

    again = manage("run_scheduler", "--stop", env=env)
    assert again.returncode != 0
    assert again.stderr.strip().splitlines()[-1].startswith("CommandError: no scheduler is running here")
