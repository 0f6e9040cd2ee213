"""Publishing the send tasks to the broker, by task name: this package never imports `tasks`."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from radgestmat.celery import app

logger = logging.getLogger("radgestmat.notifications")

SEND_TASK = "tasks.send_notification"


def enqueue(log_ids: Iterable[int]) -> None:
    """Send each row's task once the current transaction commits (ids only)."""
    ids = list(log_ids)
    if ids:
        transaction.on_commit(lambda: publish(ids))


# No publish retries (Celery's default is three): the relay re-sends what was not published.
PUBLISH_ONCE = {"max_retries": 0, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def publish(log_ids: list[int]) -> None:
    """Publish the send tasks now; when the broker is unreachable, leave the rows to the relay.

    The rows are committed with their redelivery time (`mark_enqueued`), or none, so the
    relay enqueues them once Redis answers again. Raising here instead would fail the lend,
    return or retry that planned them after it was saved (a server error for the staff
    member), and skip the other commit callbacks. One failed publish stops the batch, and
    a publish is tried once (no Celery publish retries): with a frozen Redis each try costs
    the caller the broker's socket timeout.
    """
    from kombu.exceptions import OperationalError

    # A signature by name runs the registered task's own apply_async (eager in tests, its routing and
    # options), and falls back to send_task in a process that has not imported the tasks.
    send = app.signature(SEND_TASK)
    for index, log_id in enumerate(log_ids):
        try:
            send.apply_async((log_id,), retry_policy=PUBLISH_ONCE)
        except OperationalError as error:
            logger.warning(
                "broker unreachable (%s): %d notification(s) left to the relay",
                error,
                len(log_ids) - index,
                extra={"log_ids": log_ids[index:][:20]},
            )
            return
