from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from notifications.schedule import register_schedule


class Command(BaseCommand):
    help = "Register the periodic tasks in django-celery-beat's tables (missing ones only; sub-hourly ones moved to UTC crontabs; admin edits are kept)."

    def handle(self, *args, **options):
        try:
            created, moved, kept = register_schedule()
        except DatabaseError as exc:
            raise CommandError(f"could not register the schedule (did `manage.py migrate` run?): {exc}")
        for name in created:
            self.stdout.write(f"created {name}")
        for name in moved:
            self.stdout.write(f"moved   {name} to a crontab in UTC (same cadence; no pause at a DST change)")
        for name in kept:
            self.stdout.write(f"kept    {name} (as configured in the admin)")
        self.stdout.write(
            self.style.SUCCESS(f"Schedule ready: {len(created)} created, {len(moved)} moved to UTC, {len(kept)} kept.")
        )
