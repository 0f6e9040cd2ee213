"""The files in deploy/ are valid for the tools that read them."""

from __future__ import annotations

import shutil
import sys
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"


def test_systemd_units_parse_without_a_complaint(tmp_path):
    """GIVEN the units with this checkout in place of /srv/radgestmat, THEN systemd-analyze finds nothing to say."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed (apt-get install systemd)"
    names = []
    for unit in UNITS.iterdir():
        text = (
            unit.read_text()
            .replace("/etc/radgestmat/radgestmat.env", str(ROOT / "deploy" / "radgestmat.env.example"))
            .replace("/srv/radgestmat", str(ROOT))
            .replace("User=radgestmat", "User=root")
            .replace("Group=radgestmat", "Group=root")
        )
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
        names.append(f"./{name}")
    assert "./radgestmat-worker@1.service" in names and len(names) >= 6

    result = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(names)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_worker_unit_waits_for_a_warm_shutdown():
    worker = (UNITS / "radgestmat-worker@.service").read_text()
    assert "KillMode=mixed" in worker
    stop_after = int(next(line for line in worker.splitlines() if line.startswith("TimeoutStopSec=")).split("=")[1])
    from django.conf import settings

    assert stop_after > settings.CELERY_TASK_TIME_LIMIT


def test_the_release_step_prepares_an_empty_database_and_can_run_again(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SETTINGS")}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'release.sqlite3'}", PYTHON=sys.executable)

    first = subprocess.run(
        ["bash", "deploy/release.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    second = subprocess.run(
        ["bash", "deploy/release.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )

    assert first.returncode == 0, first.stderr[-3000:]
    assert "created dispatch_due_notifications" in first.stdout
    assert second.returncode == 0, second.stderr[-3000:]
    assert "No migrations to apply" in second.stdout and "kept    dispatch_due_notifications" in second.stdout
