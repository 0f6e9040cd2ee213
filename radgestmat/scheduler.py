"""The original spec's scheduler entry points (its "Command Reference" and "Troubleshooting").

`get_scheduler_status()` is `notifications.scheduler_status.get_scheduler_status` with ISO strings
instead of datetimes, so `json.dumps(get_scheduler_status())` works. `start_scheduler()` and
`stop_scheduler()` start and stop the one beat process exactly as `manage.py run_scheduler`
and `manage.py run_scheduler --stop` do (same command, same pidfile); there is no second scheduler.
"""

from __future__ import annotations

import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings


def get_scheduler_status() -> dict[str, Any]:
    """Jobs (schedule, frequency, last and next run), workers, queues, beats and rows, JSON-ready."""
    from notifications.scheduler_status import get_scheduler_status as status
    from notifications.scheduler_status import jsonable

    return jsonable(status())


def start_scheduler(*, wait_seconds: float = 60) -> dict[str, Any]:
    """Start `manage.py run_scheduler` in the background, unless a beat already runs (here or anywhere).

    Exactly one beat may run in the deployment: a live pidfile or a beat heartbeat in Redis
    (the Procfile's `beat` under `make run`) means it is running, and nothing is started.
    Its output goes to a log file beside the pidfile (``var/celerybeat.log`` by default).
    """
    from notifications.management.commands.run_scheduler import running_pid
    from radgestmat.beat_registry import live_beat_instances

    pidfile = Path(settings.SCHEDULER_PIDFILE)
    pid = running_pid(pidfile)
    if pid:
        return {"started": False, "running": True, "pid": pid, "message": f"already running (pid {pid}, {pidfile})"}
    try:
        beats = live_beat_instances()
    except Exception as exc:  # noqa: BLE001  Redis down: beat could not work either; say so instead of starting it
        return {"started": False, "running": False, "message": f"the broker does not answer ({type(exc).__name__})"}
    if beats:
        return {"started": False, "running": True, "beats": beats, "message": f"already running ({', '.join(beats)})"}
    log_path = pidfile.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "run_scheduler"],
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if running_pid(pidfile) == process.pid:
            return {"started": True, "running": True, "pid": process.pid, "log": str(log_path)}
        if process.poll() is not None:
            last = log_path.read_text().strip().splitlines()[-1:] or [""]
            return {"started": False, "running": False, "message": f"it exited: {last[0]}", "log": str(log_path)}
        time.sleep(0.2)
    return {"started": False, "running": process.poll() is None, "pid": process.pid, "message": "no pidfile yet"}


def stop_scheduler() -> dict[str, Any]:
    """Stop the scheduler started here, as `manage.py run_scheduler --stop` does."""
    from django.core.management import CommandError, call_command

    out = StringIO()
    try:
        call_command("run_scheduler", stop=True, stdout=out)
    except CommandError as error:
        return {"stopped": False, "message": str(error)}
    return {"stopped": True, "message": out.getvalue().strip()}
