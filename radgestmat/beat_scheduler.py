"""Beat's scheduler: django-celery-beat's, with each run numbered instead of given an absolute expiry.

An entry's ``expire_seconds`` becomes, in Celery, an absolute ``expires`` time computed
on beat's clock and checked on the worker's: a worker whose clock is a minute ahead
discarded every relay run as expired. So beat publishes no ``expires``; it numbers each
run of an entry instead (an INCR in Redis, the header ``RUN_HEADER``), and the task
(`tasks.periodic.PeriodicRun`) skips a run when a newer one of the same entry was
published meanwhile — what the expiry was for (missed runs never pile up), with no clock.
"""

from __future__ import annotations

import logging

from django_celery_beat import schedulers

logger = logging.getLogger("radgestmat.ops")

RUN_HEADER = "radgestmat_run"


def run_key(entry_name: str) -> str:
    return f"beat-run:{entry_name}"


def latest_run(entry_name: str) -> int | None:
    """The number of the newest run beat published for this entry (None when unknown)."""
    from django.core.cache import cache

    return cache.get(run_key(entry_name))


def number_next_run(entry_name: str) -> int | None:
    from django.core.cache import cache

    key = run_key(entry_name)
    cache.add(key, 0, timeout=None)
    return cache.incr(key)


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        # Reserve first: it makes the entry of the next run, whose options are rebuilt from the table.
        entry = self.reserve(entry) if advance else entry
        entry.options.pop("expires", None)
        headers = dict(entry.options.get("headers") or {})
        try:
            headers[RUN_HEADER] = number_next_run(entry.name)
        except Exception:  # a run without a number is never skipped: better than no run
            logger.warning("beat: could not number the run of %s", entry.name, exc_info=True)
            headers.pop(RUN_HEADER, None)
        entry.options["headers"] = headers
        return super().apply_async(entry, producer, advance=False, **kwargs)
