"""Worker bootsteps that stand in for beat when it is gone: the alert check and the relay.

Beat starts `check_notification_alerts` every few minutes — unless beat is what died.
So every worker also offers to enqueue it every WATCHDOG_SECONDS; an atomic cache
``add`` lets one offer per period through, however many workers there are.

The relay is what keeps the timing promise, so it gets a tighter watch: each relay run
leaves a mark in Redis that lasts RELAY_STALE_SECONDS; every RELAY_WATCHDOG_SECONDS each
worker looks, and when the mark is gone (beat stopped, or its runs are lost) one of them
enqueues a relay run. With beat dead, a due row waits at most RELAY_STALE_SECONDS +
RELAY_WATCHDOG_SECONDS (75 + 15 = 90 s by default) before a relay run enqueues it.
Redis measures those durations on its own clock: the workers' clocks do not matter.
"""

from __future__ import annotations

import logging
import time

from celery import Celery, bootsteps, current_app
from django.conf import settings

logger = logging.getLogger("radgestmat.ops")

WATCHDOG_SECONDS = 300
RELAY_RAN_KEY = "relay-ran"
RELAY_OFFER_KEY = "relay-watchdog"
# By name: the Celery app's modules never import `tasks` (tasks import the apps, which use the Celery app).
ALERT_TASK = "tasks.check_notification_alerts"
RELAY_TASK = "tasks.dispatch_due_notifications"


def offer_alert_check(app: Celery | None = None) -> None:
    from django.core.cache import cache

    try:
        if cache.add("alert-watchdog", 1, timeout=WATCHDOG_SECONDS - 30):
            (app or current_app).signature(ALERT_TASK).delay()
    except Exception:  # the watchdog must never take a worker down
        logger.warning("alert watchdog: could not enqueue the alert check", exc_info=True)


_last_noted = [float("-inf")]  # monotonic time of this process's last mark


def note_relay_ran() -> None:
    """Called by each relay run: beat (or a watchdog) is keeping the relay going.

    A process renews the mark at most every third of its lifetime (a Redis write per relay
    run costs the simulated weeks of the tests a minute); the mark never has less than two
    thirds of it left, far more than the watchdog's period."""
    from django.core.cache import cache

    moment = time.monotonic()
    if moment - _last_noted[0] < settings.RELAY_STALE_SECONDS / 3:
        return
    try:
        cache.set(RELAY_RAN_KEY, 1, timeout=settings.RELAY_STALE_SECONDS)
        _last_noted[0] = moment
    except Exception:
        logger.warning("relay watchdog: could not note the relay run", exc_info=True)


def offer_relay(app: Celery | None = None) -> None:
    """Enqueue a relay run when none ran for RELAY_STALE_SECONDS (one offer per period across workers)."""
    from django.core.cache import cache

    try:
        if cache.get(RELAY_RAN_KEY) is None and cache.add(
            RELAY_OFFER_KEY, 1, timeout=max(1, settings.RELAY_WATCHDOG_SECONDS - 1)
        ):
            logger.warning(
                "relay watchdog: no relay run for %d s (beat down?): enqueuing one", settings.RELAY_STALE_SECONDS
            )
            (app or current_app).signature(RELAY_TASK).delay()
    except Exception:  # the watchdog must never take a worker down
        logger.warning("relay watchdog: could not enqueue the relay", exc_info=True)


class AlertWatchdog(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.trefs = []

    def start(self, worker):
        self.trefs = [
            worker.timer.call_repeatedly(WATCHDOG_SECONDS, offer_alert_check, (worker.app,)),
            worker.timer.call_repeatedly(settings.RELAY_WATCHDOG_SECONDS, offer_relay, (worker.app,)),
        ]

    def stop(self, worker):
        for tref in self.trefs:
            tref.cancel()
        self.trefs = []
