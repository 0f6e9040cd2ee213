from __future__ import annotations

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from notifications.scheduler_status import get_scheduler_status, jsonable


def show(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "—"


class Command(BaseCommand):
    help = "Show the periodic jobs (schedule, last and next run), the workers, the queues and the waiting rows."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")

    def handle(self, *args, **options):
        try:
            status = get_scheduler_status()
        except DatabaseError as exc:
            raise CommandError(f"cannot read the schedule from the database: {exc}")
        if options["json"]:
            self.stdout.write(json.dumps(jsonable(status), indent=2))
            return
        self.stdout.write(f"{'job':<30} {'enabled':<8} {'schedule':<36} {'last run':<25} next run")
        for job in status["jobs"]:
            enabled = ("yes" if job["enabled"] else "no") if job["registered"] else "MISSING"
            self.stdout.write(
                f"{job['name']:<30} {enabled:<8} {job['schedule']:<36} {show(job['last_run']):<25} {show(job['next_run'])}"
            )
        workers = status["workers"]
        self.stdout.write(f"workers: {', '.join(workers['workers']) or workers['error']}")
        queues = status["queues"]
        lengths = ", ".join(f"{name}={length}" for name, length in queues["lengths"].items())
        self.stdout.write(f"queues: {lengths or queues['error']}")
        beats = status["beats"]
        self.stdout.write(
            f"beat: {', '.join(beats['instances']) or '—'}{'' if beats['ok'] else '  (' + beats['error'] + ')'}"
        )
        rows = status["notifications"]
        self.stdout.write("notifications: " + ", ".join(f"{key}={value}" for key, value in rows.items()))
        if status["healthy"]:
            self.stdout.write(self.style.SUCCESS("healthy"))
        else:
            for problem in status["problems"]:
                self.stdout.write(self.style.WARNING(f"problem: {problem}"))
