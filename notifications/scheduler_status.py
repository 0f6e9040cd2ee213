"""`get_scheduler_status()`: is the clockwork running? For `manage.py scheduler_status`, the web UI and /healthz."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from . import schedule
from .models import NotificationLog, Statut

NOTIFICATION_QUEUES = ("default", "notifications")


def describe_entry(entry) -> str:
    if entry.crontab is not None:
        c = entry.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week} ({c.timezone})"
    if entry.interval is not None:
        return f"every {entry.interval.every} {entry.interval.period}"
    return str(entry.solar or entry.clocked or "")


def jobs_status(now: datetime) -> list[dict[str, Any]]:
    from django_celery_beat.models import PeriodicTask

    entries = {
        entry.name: entry
        for entry in PeriodicTask.objects.select_related("crontab", "interval", "solar", "clocked").filter(
            name__in=[job.name for job in schedule.beat_schedule()]
        )
    }
    jobs = []
    for job in schedule.beat_schedule():
        entry = entries.get(job.name)
        if entry is None:
            jobs.append(
                {
                    "name": job.name,
                    "task": job.task,
                    "registered": False,
                    "enabled": False,
                    "schedule": "",
                    "expires_seconds": job.expires,
                    "last_run": None,
                    "next_run": None,
                    "total_run_count": 0,
                }
            )
            continue
        upcoming = schedule.entry_next_run(entry, now)
        jobs.append(
            {
                "name": job.name,
                "task": entry.task,
                "registered": True,
                "enabled": entry.enabled,
                "schedule": describe_entry(entry),
                "expires_seconds": entry.expire_seconds,
                "last_run": entry.last_run_at,
                "next_run": upcoming,
                "total_run_count": entry.total_run_count,
            }
        )
    return jobs


def workers_status(timeout: float) -> dict[str, Any]:
    from radgestmat.celery import app

    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # broker down: report it, do not crash the status page
        return {"ok": False, "workers": [], "error": f"{type(exc).__name__}: {exc}"}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "workers": names, "error": "" if names else "no worker answered the ping"}


def queues_status() -> dict[str, Any]:
    from radgestmat.celery import app

    try:
        with app.connection_for_read() as conn:
            client = conn.default_channel.client
            lengths = {queue: client.llen(queue) for queue in NOTIFICATION_QUEUES}
    except Exception as exc:
        return {"ok": False, "lengths": {}, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "lengths": lengths, "error": ""}


def rows_status(now: datetime) -> dict[str, int]:
    counts = NotificationLog.objects.aggregate(
        waiting=Count("id", filter=Q(statut=Statut.EN_ATTENTE)),
        due=Count("id", filter=Q(statut__in=[Statut.EN_ATTENTE, Statut.ECHEC], date_scheduled__lte=now)),
        late=Count(
            "id",
            filter=Q(statut__in=[Statut.EN_ATTENTE, Statut.ECHEC], date_scheduled__lte=now - timedelta(minutes=2)),
        ),
        sending=Count("id", filter=Q(statut=Statut.EN_COURS)),
        failed=Count("id", filter=Q(statut=Statut.ECHEC)),
        failed_permanently=Count("id", filter=Q(statut=Statut.ECHEC_PERMANENT)),
    )
    return counts


def get_scheduler_status(*, now: datetime | None = None, ping_timeout: float = 1.0) -> dict[str, Any]:
    """A snapshot of the scheduler, the workers, the queues and the notification rows.

    Returns a dict (datetimes are aware; ``--json`` turns them into ISO strings)::

        {
          "now": datetime,
          "healthy": bool,          # beat ran the relay recently, a worker answered, nothing late
          "problems": [str, ...],   # one line per reason it is not healthy
          "jobs": [                 # one per entry of notifications.schedule.beat_schedule(), in that order
            {"name": "check_court_terme_reminders", "task": "tasks.check_court_terme_reminders",
             "registered": bool,    # present in django-celery-beat's tables
             "enabled": bool, "schedule": "*/30 * * * * (Europe/Paris)", "expires_seconds": int | None,
             "last_run": datetime | None, "next_run": datetime | None, "total_run_count": int},
            ...
          ],
          "workers": {"ok": bool, "workers": ["celery@host", ...], "error": str},
          "queues": {"ok": bool, "lengths": {"default": int, "notifications": int}, "error": str},
          "notifications": {"waiting": int,   # EN_ATTENTE, any time
                            "due": int,       # waiting or failed, time has come
                            "late": int,      # of those, due more than 2 minutes ago
                            "sending": int, "failed": int, "failed_permanently": int},
          "time_zone": "Europe/Paris",
        }

    Costs three queries, one broker ping (``ping_timeout`` seconds at most) and one
    Redis round trip; never raises because Redis or the workers are down.
    """
    now = now or timezone.now()
    jobs = jobs_status(now)
    workers = workers_status(ping_timeout)
    queues = queues_status()
    rows = rows_status(now)
    problems = []
    for job in jobs:
        if not job["registered"]:
            problems.append(f"{job['name']} is not registered (run manage.py setup_schedule)")
    relay = next(job for job in jobs if job["name"] == "dispatch_due_notifications")
    if relay["enabled"] and (relay["last_run"] is None or relay["last_run"] < now - timedelta(minutes=3)):
        problems.append("beat has not started the relay in the last 3 minutes (is exactly one beat running?)")
    if not relay["enabled"]:
        problems.append("the relay dispatch_due_notifications is disabled: nothing planned will be sent")
    if not workers["ok"]:
        problems.append(f"workers: {workers['error']}")
    if not queues["ok"]:
        problems.append(f"queues: {queues['error']}")
    if rows["late"]:
        problems.append(f"{rows['late']} notification(s) due more than 2 minutes ago are still waiting")
    return {
        "now": now,
        "healthy": not problems,
        "problems": problems,
        "jobs": jobs,
        "workers": workers,
        "queues": queues,
        "notifications": rows,
        "time_zone": settings.TIME_ZONE,
    }
