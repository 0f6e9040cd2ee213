"""A worker bootstep that enqueues the alert check now and then, so beat's own death gets noticed.

Beat starts `check_notification_alerts` every few minutes — unless beat is what died.
So every worker also offers to enqueue it every WATCHDOG_SECONDS; an atomic cache
``add`` lets one offer per period through, however many workers there are.
"""

from __future__ import annotations

import logging

from celery import Celery, bootsteps, current_app

logger = logging.getLogger("radgestmat.ops")

WATCHDOG_SECONDS = 300
# By name: the Celery app's modules never import `tasks` (tasks import the apps, which use the Celery app).
ALERT_TASK = "tasks.check_notification_alerts"


def offer_alert_check(app: Celery | None = None) -> None:
    from django.core.cache import cache

    try:
        if cache.add("alert-watchdog", 1, timeout=WATCHDOG_SECONDS - 30):
            (app or current_app).signature(ALERT_TASK).delay()
    except Exception:  # the watchdog must never take a worker down
        logger.warning("alert watchdog: could not enqueue the alert check", exc_info=True)


class AlertWatchdog(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        self.tref = worker.timer.call_repeatedly(WATCHDOG_SECONDS, offer_alert_check, (worker.app,))

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
