"""The beat schedule: defined once here, registered in django-celery-beat's tables by `setup_schedule`.

`beat_schedule()` is the single definition (a pure function). `register_schedule()`
creates the missing entries and leaves existing ones alone, so an interval or an
"enabled" box changed in the admin survives every deploy. The checks read their own
entry back (`next_run_of`) to know how far ahead to plan, so an admin edit to a
cadence never opens a gap in the timing promise.

Sub-hourly jobs are crontabs in UTC: Celery's crontab in a zone with daylight saving
time is not due for an hour on the autumn night (celery#6438, celery#10107), which
stopped the relay, the overdue and the alert checks. UTC has no such night, and Paris
is a whole number of hours from UTC, so ``*/15`` still fires at :00, :15, :30, :45 local.
Jobs at a local hour (08:00, 02:00, 00:00/12:00) stay crontabs in ``TIME_ZONE``: a UTC
crontab cannot hold a local hour across DST. `register_schedule()` moves an existing
install's sub-hourly entries from a local crontab to the same fields in UTC (docs/timing.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol, cast
from zoneinfo import ZoneInfo

from celery.schedules import crontab as celery_crontab
from django.conf import settings
from django.db import transaction

from .timeline import local_tz


@dataclass(frozen=True)
class Job:
    """One periodic task: its beat entry name (also the task's short name) and its crontab.

    ``at_local_hour`` says the crontab is read on the local wall clock (``TIME_ZONE``); otherwise in UTC.
    """

    name: str
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    expires: int = 50
    description: str = ""
    at_local_hour: bool = False

    @property
    def timezone(self) -> str:
        return settings.TIME_ZONE if self.at_local_hour else UTC_ZONE

    @property
    def task(self) -> str:
        return f"tasks.{self.name}"

    @property
    def crontab_fields(self) -> dict[str, str]:
        return {
            "minute": self.minute,
            "hour": self.hour,
            "day_of_week": self.day_of_week,
            "day_of_month": self.day_of_month,
            "month_of_year": self.month_of_year,
        }


UTC_ZONE = "UTC"  # the zone name django-celery-beat stores


def beat_schedule() -> list[Job]:
    """The default schedule. Each entry expires before its next run."""
    return [
        Job(
            "dispatch_due_notifications",
            expires=50,
            description="Relay: enqueue the notifications whose time has come; recover stranded ones.",
        ),
        Job(
            "check_court_terme_reminders",
            minute="*/30",
            expires=25 * 60,
            description="Plan the reminders of short loans (< 4 h).",
        ),
        Job(
            "check_moyen_terme_reminders",
            minute="0",
            hour="*/12",
            expires=11 * 3600,
            description="Plan the reminders of medium loans (4 h – 24 h).",
            at_local_hour=True,
        ),
        Job(
            "check_long_terme_reminders",
            minute="0",
            hour="8",
            expires=23 * 3600,
            description="Plan the J-2, J-1 and due-day reminders of long loans (> 24 h).",
            at_local_hour=True,
        ),
        Job(
            "check_overdue_materials",
            minute="*/15",
            expires=14 * 60,
            description="Plan the overdue alerts (escalating; staff told from level 2).",
        ),
        Job(
            "cleanup_old_notifications",
            minute="0",
            hour="2",
            expires=23 * 3600,
            description="Delete notification logs past the retention and expired task results.",
            at_local_hour=True,
        ),
        Job(
            "check_notification_alerts",
            minute="*/5",
            expires=4 * 60,
            description="Email the admins once per incident: failures, rejected credentials, beat stopped.",
        ),
    ]


def job_named(name: str) -> Job:
    return next(job for job in beat_schedule() if job.name == name)


class ExpandedCrontab(Protocol):
    """The sets a `crontab` expands its fields into (celery-types does not declare them)."""

    minute: set[int]
    hour: set[int]
    day_of_week: set[int]
    day_of_month: set[int]
    month_of_year: set[int]


def next_cron_time(schedule: celery_crontab, after: datetime, tz=None) -> datetime:
    """The first minute strictly after ``after`` that ``schedule`` matches on the wall clock of ``tz``.

    Walks real minutes (UTC) and reads each on the local clock, so a DST change
    neither skips nor repeats a run that the wall clock has once.
    """
    tz = tz or local_tz()
    fields = cast(ExpandedCrontab, schedule)
    moment = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = moment + timedelta(days=366)
    while moment < limit:
        local = moment.astimezone(tz)
        if (
            local.month not in fields.month_of_year
            or local.day not in fields.day_of_month
            or local.isoweekday() % 7 not in fields.day_of_week
        ):
            moment = datetime.combine(local.date() + timedelta(days=1), time(0, 0), tzinfo=tz).astimezone(UTC)
        elif local.hour not in fields.hour:
            moment += timedelta(minutes=60 - local.minute)
        elif local.minute not in fields.minute:
            moment += timedelta(minutes=1)
        else:
            return moment
    raise ValueError(f"{schedule!r} never runs")


@functools.lru_cache(maxsize=32)
def default_crontab(name: str) -> celery_crontab:
    return celery_crontab(**job_named(name).crontab_fields)


def default_next_run(name: str, now: datetime) -> datetime:
    return next_cron_time(default_crontab(name), now, tz=ZoneInfo(job_named(name).timezone))


def entry_next_run(entry, now: datetime) -> datetime | None:
    """Next run of a django-celery-beat PeriodicTask (its crontab or interval); None when disabled."""
    if not entry.enabled:
        return None
    if entry.crontab is not None:
        return next_cron_time(entry.crontab.schedule, now, tz=entry.crontab.timezone)
    if entry.interval is not None:
        every = entry.interval.schedule.run_every
        last = entry.last_run_at
        return max(now, last + every) if last else now + every
    return None


def next_run_of(name: str, now: datetime) -> datetime:
    """When the periodic task ``name`` runs next, from its beat entry (one query); the default when missing."""
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.select_related("crontab", "interval").filter(name=name).first()
    upcoming = entry_next_run(entry, now) if entry is not None else None
    return upcoming or default_next_run(name, now)


def planning_horizon(name: str, now: datetime) -> datetime:
    """How far ahead the check ``name`` plans: its next run plus the planning margin."""
    return next_run_of(name, now) + timedelta(minutes=settings.PLANNING_MARGIN_MINUTES)


def moves_to_utc(job: Job, entry) -> bool:
    """Whether ``entry`` is a sub-hourly job still on a crontab in a zone with DST, and its cadence reads the same in UTC.

    Only minute fields move (``*/20``: every 20 minutes in any zone whose offset is whole hours); an entry an
    admin restricted to some local hours or days keeps its local crontab, since UTC cannot hold a local hour.
    """
    cron = entry.crontab
    if job.at_local_hour or cron is None or str(cron.timezone) == UTC_ZONE:
        return False
    return (cron.hour, cron.day_of_week, cron.day_of_month, cron.month_of_year) == ("*", "*", "*", "*")


def register_schedule() -> tuple[list[str], list[str], list[str]]:
    """Create the missing beat entries; move sub-hourly ones off a local crontab; keep the rest as the admin left them.

    Returns (created, moved to UTC, kept) names. A moved entry keeps its minute field (an admin's ``*/20``),
    its "enabled" box, expiry and everything else; only its crontab's zone changes. Running it twice changes nothing.
    """
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    created, moved, kept = [], [], []
    with transaction.atomic():
        entries = PeriodicTask.objects.select_related("crontab").in_bulk(
            [job.name for job in beat_schedule()], field_name="name"
        )
        for job in beat_schedule():
            entry = entries.get(job.name)
            if entry is not None and moves_to_utc(job, entry):
                local = entry.crontab
                entry.crontab, _ = CrontabSchedule.objects.get_or_create(
                    minute=local.minute,
                    hour=local.hour,
                    day_of_week=local.day_of_week,
                    day_of_month=local.day_of_month,
                    month_of_year=local.month_of_year,
                    timezone=UTC_ZONE,
                )
                entry.save(update_fields=["crontab"])
                moved.append(job.name)
                continue
            if entry is not None:
                kept.append(job.name)
                continue
            cron, _ = CrontabSchedule.objects.get_or_create(**job.crontab_fields, timezone=job.timezone)
            PeriodicTask.objects.create(
                name=job.name,
                task=job.task,
                crontab=cron,
                expire_seconds=job.expires,
                description=job.description,
                enabled=True,
            )
            created.append(job.name)
        if created or moved:
            PeriodicTasks.update_changed()
    return created, moved, kept
