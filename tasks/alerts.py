"""The failure-alert check (beat starts it; every worker's watchdog in `radgestmat.watchdog` too)."""

from __future__ import annotations

from celery import shared_task

from radgestmat import clock

from .periodic import PeriodicRun


@shared_task(base=PeriodicRun, name="tasks.check_notification_alerts")
def check_notification_alerts() -> dict[str, list[str]]:
    """Email the admins about failure incidents that opened or closed (see `notifications.alerts`)."""
    from notifications import alerts

    return alerts.check_notification_alerts(now=clock.now())
