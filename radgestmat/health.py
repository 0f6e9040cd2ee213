"""`/healthz`: is the whole stack able to keep the timing promise right now?

One JSON document, no authentication, no secrets (no URLs, host names or error
texts: only which check failed and the exception's class). HTTP 200 when every
check passes, 503 otherwise, so a load balancer or an uptime probe can act on
the status code alone.

Checks: the database answers; Redis (the broker, Sentinel or not) answers; at
least one worker answers a ping; beat ticked recently; no notification has been
waiting long past its time. Permanent failures in the last hour are reported
for information (the alert check emails admins about them) but do not fail it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.pidbox import Mailbox

from notifications.models import NotificationLog, Statut

RELAY = "dispatch_due_notifications"


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def check_redis_and_workers() -> tuple[dict[str, Any], dict[str, Any]]:
    """Redis, then (only if Redis answered) how many workers answer a ping within HEALTH_WORKER_TIMEOUT."""
    from radgestmat.celery import app, broker_connection

    with broker_connection() as conn:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
            conn.default_channel.client.ping()
        except Exception as exc:
            return _failed(exc), {"ok": False, "count": 0, "error": "broker unreachable"}
        # Our own mailbox on this connection: `app.control` would publish through the app's
        # producer pool, which retries forever when its broker has just gone away.
        mailbox = Mailbox(app.conf.control_exchange, type="fanout", accept=["json"])
        try:
            replies = mailbox(conn)._broadcast("ping", reply=True, timeout=settings.HEALTH_WORKER_TIMEOUT)
        except Exception as exc:
            return {"ok": True}, {**_failed(exc), "count": 0}
    return {"ok": True}, {"ok": bool(replies), "count": len(replies or [])}


def beat_last_tick(now: datetime) -> datetime | None:
    """When beat last started the relay (every minute); None if it never did or the relay is disabled."""
    from notifications.scheduler_status import jobs_status

    relay = next(job for job in jobs_status(now) if job["name"] == RELAY)
    return relay["last_run"] if relay["enabled"] else None


def check_beat(now: datetime) -> dict[str, Any]:
    last = beat_last_tick(now)
    if last is None:
        return {"ok": False, "last_tick_age_s": None}
    age = (now - last).total_seconds()
    return {"ok": age <= settings.BEAT_STALE_AFTER_MINUTES * 60, "last_tick_age_s": round(age)}


def check_backlog(now: datetime) -> dict[str, Any]:
    waiting = NotificationLog.objects.filter(statut=Statut.EN_ATTENTE, date_scheduled__lte=now)
    oldest = waiting.aggregate(oldest=Min("date_scheduled"))["oldest"]
    age = (now - oldest).total_seconds() if oldest else 0
    return {"ok": age <= settings.NOTIFICATION_BACKLOG_MAX_MINUTES * 60, "oldest_waiting_age_s": round(age)}


def failures_last_hour(now: datetime) -> int:
    return NotificationLog.objects.filter(
        statut=Statut.ECHEC_PERMANENT, updated_at__gte=now - timedelta(hours=1)
    ).count()


def _failed(exc: Exception) -> dict[str, Any]:
    return {"ok": False, "error": type(exc).__name__}


def collect(now: datetime) -> dict[str, Any]:
    """Every check's result, and the overall status."""
    checks: dict[str, Any] = {}
    try:
        checks["database"] = check_database()
    except Exception as exc:
        checks["database"] = _failed(exc)
    checks["redis"], checks["workers"] = check_redis_and_workers()
    if checks["database"]["ok"]:
        for name, check in (("beat", check_beat), ("backlog", check_backlog)):
            try:
                checks[name] = check(now)
            except Exception as exc:
                checks[name] = _failed(exc)
        try:
            checks["failures_last_hour"] = {"ok": True, "count": failures_last_hour(now)}
        except Exception as exc:
            checks["failures_last_hour"] = _failed(exc)
    ok = all(check["ok"] for check in checks.values()) and checks["database"]["ok"]
    return {"status": "ok" if ok else "fail", "checks": checks}


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = collect(timezone.now())
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
