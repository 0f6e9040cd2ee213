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

from notifications.models import NotificationLog, Statut, late_cutoff
from notifications.scheduler_status import beat_last_tick, beat_stopped, broker_status


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def check_broker(now: datetime) -> dict[str, dict[str, Any]]:
    """Redis, the workers answering a ping within HEALTH_WORKER_TIMEOUT, and beat, from one broker connection."""

    workers, queues, beats = broker_status(settings.HEALTH_WORKER_TIMEOUT)
    redis = {"ok": True} if queues["ok"] else {"ok": False, "error": "unreachable"}
    last = beat_last_tick(now)
    age = (now - last).total_seconds() if last else None
    return {
        "redis": redis,
        "workers": {"ok": workers["ok"], "count": len(workers["workers"])},
        "beat": {
            "ok": not beat_stopped(last, now),
            "last_tick_age_s": round(age) if age is not None else None,
            "instances": len(beats["instances"]),
        },
    }


def check_backlog(now: datetime) -> dict[str, Any]:
    waiting = NotificationLog.objects.due(now).filter(statut=Statut.EN_ATTENTE)
    oldest = waiting.aggregate(oldest=Min("date_scheduled"))["oldest"]
    age = (now - oldest).total_seconds() if oldest else 0
    return {"ok": oldest is None or oldest >= late_cutoff(now), "oldest_waiting_age_s": round(age)}


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
    if checks["database"]["ok"]:
        checks.update(check_broker(now))
        try:
            checks["backlog"] = check_backlog(now)
            checks["failures_last_hour"] = {"ok": True, "count": failures_last_hour(now)}
        except Exception as exc:
            checks["backlog"] = _failed(exc)
    ok = all(check["ok"] for check in checks.values())
    return {"status": "ok" if ok else "fail", "checks": checks}


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = collect(timezone.now())
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
