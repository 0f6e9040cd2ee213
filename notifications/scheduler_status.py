"""`get_scheduler_status()`: is the clockwork running? For `manage.py scheduler_status`, the web UI and /healthz.

`scheduler_status()` is the same, cached a little while for the staff pages."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from radgestmat import clock, queues

from . import schedule
from .models import NotificationLog, Statut, due_by, late_cutoff

NOTIFICATION_QUEUES = queues.ALL
SCHEDULER_STATUS_CACHE_KEY = "staff-ui:scheduler-status"
SCHEDULER_STATUS_CACHE_SECONDS = 30
SCHEDULER_PING_TIMEOUT = 0.5
RELAY = "dispatch_due_notifications"


def describe_entry(entry) -> str:
    if entry.crontab is not None:
        c = entry.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week} ({c.timezone})"
    if entry.interval is not None:
        return f"every {entry.interval.every} {entry.interval.period}"
    return str(entry.solar or entry.clocked or "")


INTERVAL_UNITS = {"seconds": ("s", "s"), "minutes": ("min", "min"), "hours": ("hour", "hours"), "days": ("day", "days")}


def _clock(hour: int, minute: int) -> str:
    return f"{(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def describe_frequency(entry) -> str:
    """A beat entry's cadence in the spec's words ("Every 30 min", "Every 12 hours", "Daily @ 8:00 AM").

    Interval and crontab entries alike; a crontab with no simple wording falls back to its expression.
    """
    if entry.interval is not None:
        every, period = entry.interval.every, entry.interval.period
        one, many = INTERVAL_UNITS.get(period, (period, period))
        if every == 1:
            return {"min": "Every minute", "hour": "Every hour", "day": "Daily"}.get(one, f"Every 1 {one}")
        return f"Every {every} {many}"
    if entry.crontab is not None:
        c = entry.crontab
        minute, hour = str(c.minute), str(c.hour)
        any_day = (str(c.day_of_week), str(c.day_of_month), str(c.month_of_year)) == ("*", "*", "*")
        if any_day and hour == "*":
            if minute == "*":
                return "Every minute"
            if minute.startswith("*/") and minute[2:].isdigit():
                return f"Every {minute[2:]} min"
            if minute.isdigit():
                return "Every hour" if minute == "0" else f"Every hour @ :{int(minute):02d}"
        if any_day and minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
            return f"Every {hour[2:]} hours"
        if any_day and minute.isdigit() and hour.isdigit():
            return f"Daily @ {_clock(int(hour), int(minute))}"
    return describe_entry(entry)


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
                    "frequency": "",
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
                "frequency": describe_frequency(entry),
                "expires_seconds": entry.expire_seconds,
                "last_run": entry.last_run_at,
                "next_run": upcoming,
                "total_run_count": entry.total_run_count,
            }
        )
    return jobs


def beat_last_tick(now: datetime) -> datetime | None:
    """When beat last started the relay (every minute); None if it never did or the relay is disabled."""
    relay = next(job for job in jobs_status(now) if job["name"] == RELAY)
    return relay["last_run"] if relay["enabled"] else None


def beat_stopped(last_tick: datetime | None, now: datetime) -> bool:
    """Whether beat has not started the relay for BEAT_STALE_AFTER_MINUTES (or never did)."""
    # Beat writes last_run_at back to the database every few minutes, not at each run.
    return last_tick is None or now - last_tick > timedelta(minutes=settings.BEAT_STALE_AFTER_MINUTES)


def broker_status(timeout: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(workers, queues, beats) from one broker connection; each says what failed instead of raising."""
    from kombu.pidbox import Mailbox

    from radgestmat import beat_registry
    from radgestmat.celery import app, broker_connection

    down = {"ok": False, "error": _("broker unreachable")}
    with broker_connection() as conn:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
            client = conn.default_channel.client
            lengths = {queue: client.llen(queue) for queue in NOTIFICATION_QUEUES}
        except Exception as exc:  # noqa: BLE001  broker down: report it, never crash a status page
            error = _("broker unreachable (%(error)s)") % {"error": type(exc).__name__}
            return (
                {**down, "workers": [], "error": error},
                {**down, "lengths": {}, "error": error},
                {
                    **down,
                    "instances": [],
                    "error": error,
                },
            )
        queues = {"ok": True, "lengths": lengths, "error": ""}
        # Before the ping: the ping leaves a BRPOP waiting on this client's connection, and a command
        # sent after it would read that BRPOP's answer (and the connection's close, the command's).
        try:
            instances = beat_registry.live_beats(client, time.time())
            beats = {
                "ok": len(instances) == 1,
                "instances": instances,
                "error": ""
                if len(instances) == 1
                else _("%(count)d beat processes alive; exactly one must run") % {"count": len(instances)},
            }
        except Exception as exc:  # noqa: BLE001
            beats = {
                "ok": False,
                "instances": [],
                "error": _("cannot read the beat heartbeats (%(error)s)") % {"error": type(exc).__name__},
            }
        # Our own mailbox on this connection: `app.control` would retry forever if the broker just went away.
        mailbox = Mailbox(app.conf.control_exchange, type="fanout", accept=["json"])
        try:
            replies = mailbox(conn)._broadcast("ping", reply=True, timeout=timeout) or []  # type: ignore[attr-defined]  # kombu-stubs omit Node._broadcast
            names = sorted(name for reply in replies for name in reply)
            workers = {"ok": bool(names), "workers": names, "error": "" if names else _("no worker answered the ping")}
        except Exception as exc:  # noqa: BLE001
            workers = {
                "ok": False,
                "workers": [],
                "error": _("ping failed (%(error)s)") % {"error": type(exc).__name__},
            }
    return workers, queues, beats


COUNTED_STATUTS = (Statut.EN_ATTENTE, Statut.EN_COURS, Statut.ECHEC, Statut.ECHEC_PERMANENT)


def rows_status(now: datetime) -> dict[str, int]:
    # Only the rows of the statuses counted: the sent and cancelled history (most of the log) is never read.
    counts = NotificationLog.objects.filter(statut__in=COUNTED_STATUTS).aggregate(
        waiting=Count("id", filter=Q(statut=Statut.EN_ATTENTE)),
        due=Count("id", filter=due_by(now)),
        late=Count("id", filter=due_by(late_cutoff(now))),
        sending=Count("id", filter=Q(statut=Statut.EN_COURS)),
        failed=Count("id", filter=Q(statut=Statut.ECHEC)),
        failed_permanently=Count("id", filter=Q(statut=Statut.ECHEC_PERMANENT)),
    )
    return counts


def jsonable(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` with its datetimes as ISO strings, ready for `json.dumps`."""
    return json.loads(json.dumps(status, default=lambda value: value.isoformat()))


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
             "enabled": bool, "schedule": "*/30 * * * * (Europe/Paris)", "frequency": "Every 30 min",
             "expires_seconds": int | None,
             "last_run": datetime | None, "next_run": datetime | None, "total_run_count": int},
            ...
          ],
          "workers": {"ok": bool, "workers": ["celery@host", ...], "error": str},
          "queues": {"ok": bool, "lengths": {queue: int for each of radgestmat.queues.ALL}, "error": str},
          "beats": {"ok": bool,     # exactly one beat heartbeat seen in the last minute
                    "instances": ["host:pid", ...], "error": str},
          "notifications": {"waiting": int,   # EN_ATTENTE, any time
                            "due": int,       # waiting, or failed with its retry time, come
                            "late": int,      # of those, due before `models.late_cutoff` (the promise broken)
                            "sending": int, "failed": int, "failed_permanently": int},
          "time_zone": "Europe/Paris",
        }

    Costs three queries and one broker connection (the worker ping waits
    ``ping_timeout`` seconds at most); never raises because Redis or the workers are down.
    """
    now = now or clock.now()
    jobs = jobs_status(now)
    workers, queues, beats = broker_status(ping_timeout)
    rows = rows_status(now)
    problems = []
    for job in jobs:
        if not job["registered"]:
            problems.append(_("%(name)s is not registered (run manage.py setup_schedule)") % {"name": job["name"]})
    relay = next(job for job in jobs if job["name"] == RELAY)
    if relay["enabled"] and beat_stopped(relay["last_run"], now):
        problems.append(
            _("beat has not started the relay in the last %(minutes)d minutes (is exactly one beat running?)")
            % {"minutes": settings.BEAT_STALE_AFTER_MINUTES}
        )
    if not relay["enabled"]:
        problems.append(_("the relay dispatch_due_notifications is disabled: nothing planned will be sent"))
    if not beats["ok"]:
        problems.append(_("beat: %(error)s") % {"error": beats["error"]})
    if not workers["ok"]:
        problems.append(_("workers: %(error)s") % {"error": workers["error"]})
    if not queues["ok"]:
        problems.append(_("queues: %(error)s") % {"error": queues["error"]})
    if rows["late"]:
        problems.append(
            ngettext(
                "%(count)d notification due more than %(minutes)d minutes ago is still waiting",
                "%(count)d notifications due more than %(minutes)d minutes ago are still waiting",
                rows["late"],
            )
            % {"count": rows["late"], "minutes": settings.NOTIFICATION_BACKLOG_MAX_MINUTES}
        )
    return {
        "now": now,
        "healthy": not problems,
        "problems": problems,
        "jobs": jobs,
        "workers": workers,
        "queues": queues,
        "beats": beats,
        "notifications": rows,
        "time_zone": settings.TIME_ZONE,
    }


def scheduler_status_cache_key(language: str | None = None) -> str:
    """Per language: the problem lines are written in the language of the page that computed them."""
    return f"{SCHEDULER_STATUS_CACHE_KEY}:{language or get_language()}"


def forget_scheduler_status() -> None:
    cache.delete_many([scheduler_status_cache_key(code) for code, _name in settings.LANGUAGES])


def scheduler_status(*, fresh: bool = False) -> dict:
    """The scheduler/worker health summary. The dashboard reuses it for a little while:
    pinging the workers waits for their answers, and the front desk should not.
    The cache lives in Redis; when Redis is down the status is computed (and says so)."""
    status = None
    if not fresh:
        try:
            status = cache.get(scheduler_status_cache_key())
        except Exception:  # noqa: BLE001  the cache is Redis: down means "compute it", not a 500
            status = None
    if status is None:
        status = get_scheduler_status(ping_timeout=SCHEDULER_PING_TIMEOUT)
        with contextlib.suppress(Exception):
            cache.set(scheduler_status_cache_key(), status, SCHEDULER_STATUS_CACHE_SECONDS)
    return status
