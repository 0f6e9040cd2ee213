from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from notifications.schedule import register_schedule
from notifications.scheduler_status import jobs_status


def read_pid(pidfile: Path) -> int:
    try:
        return int(pidfile.read_text().strip())
    except FileNotFoundError:
        raise CommandError(f"no scheduler is running here ({pidfile} does not exist)") from None
    except ValueError:
        raise CommandError(f"{pidfile} does not hold a process id; remove it if no scheduler is running") from None


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_pid(pidfile: Path) -> int | None:
    """The pid of the scheduler started with this pidfile, when it is still alive."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_exists(pid) else None


class Command(BaseCommand):
    help = (
        "Run the scheduler (celery beat with the database schedule) in the foreground, after printing its jobs. "
        "Exactly one must run in the whole deployment. --stop stops the one started here."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stop", action="store_true", help="stop the running scheduler (from its pidfile)")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, stop: bool = False, loglevel: str = "INFO", **options):
        pidfile = Path(settings.SCHEDULER_PIDFILE)
        if stop:
            return self.stop(pidfile)
        running = running_pid(pidfile)
        if running:
            raise CommandError(f"a scheduler is already running (pid {running}, {pidfile}): exactly one may run")
        try:
            register_schedule()
            jobs = jobs_status(timezone.now())
        except DatabaseError as exc:
            raise CommandError(f"cannot read the schedule (did `manage.py migrate` run?): {exc}") from exc
        registered = [job for job in jobs if job["registered"] and job["enabled"]]
        # The spec's wording (its "Command Reference"); the schedule itself is the beat entries'.
        self.stdout.write("✓ Scheduler started successfully")
        self.stdout.write(f"✓ {len(registered)} jobs registered")
        self.stdout.write("")
        self.stdout.write("Registered Jobs:")
        for job in jobs:
            frequency = job["frequency"] if job["registered"] else "not registered (run manage.py setup_schedule)"
            state = "" if job["enabled"] or not job["registered"] else " (disabled)"
            self.stdout.write(f"  - {job['name']}: {frequency}{state}")
        self.stdout.write("")
        self.stdout.write("✓ Scheduler is running. Press Ctrl+C to stop.")
        self.stdout.write(f"  (pidfile {pidfile}; from another terminal: manage.py run_scheduler --stop)")
        self.stdout.flush()
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        from radgestmat.celery import app

        app.Beat(
            scheduler="radgestmat.beat_scheduler:DatabaseScheduler",
            pidfile=str(pidfile),
            loglevel=loglevel,
            quiet=True,
        ).run()

    def stop(self, pidfile: Path) -> None:
        pid = read_pid(pidfile)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pidfile.unlink(missing_ok=True)
            raise CommandError(f"the scheduler (pid {pid}) was not running; removed the stale {pidfile}") from None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # Beat removes its pidfile as it exits.
            if not pidfile.exists() or not process_exists(pid):
                self.stdout.write(self.style.SUCCESS(f"Stopped the scheduler (pid {pid})."))
                return
            time.sleep(0.2)
        raise CommandError(f"the scheduler (pid {pid}) did not stop within 15 s")
