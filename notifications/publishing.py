"""Publishing the send tasks to the broker, by task name: this package never imports `tasks`."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from radgestmat import queues
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

    The rows that were not published lose the redelivery time `mark_enqueued` gave them, so
    the relay's next pass enqueues them (not a redelivery delay later). Raising here instead would fail the lend,
    return or retry that planned them after it was saved (a server error for the staff
    member), and skip the other commit callbacks. One failed publish stops the batch, and
    a publish is tried once (no Celery publish retries): with a frozen Redis each try costs
    the caller the broker's socket timeout.
    """
    from kombu.exceptions import OperationalError

    # A signature by name runs the registered task's own apply_async (eager in tests, its routing and
    # options), and falls back to send_task in a process that has not imported the tasks.
    send = app.signature(SEND_TASK)
    at_the_desk = desk_rows(log_ids)
    ordered = sorted(log_ids, key=lambda log_id: log_id not in at_the_desk)
    for index, log_id in enumerate(ordered):
        try:
            if log_id in at_the_desk:
                send.apply_async((log_id,), retry_policy=PUBLISH_ONCE, queue=queues.PRIORITY)
            else:
                send.apply_async((log_id,), retry_policy=PUBLISH_ONCE)  # the task's route
        except OperationalError as error:
            logger.warning(
                "broker unreachable (%s): %d notification(s) left to the relay",
                error,
                len(ordered) - index,
                extra={"log_ids": ordered[index:][:20]},
            )
            forget_redelivery(ordered[index:])
            return


def desk_rows(log_ids: list[int]) -> set[int]:
    """The rows among ``log_ids`` someone is waiting for (`models.DESK_TYPES`): one query.

    If the database does not answer, every row takes the normal queue: it is still sent.
    """
    from django.db import DatabaseError

    from .models import DESK_TYPES, NotificationLog

    if app.conf.task_always_eager:
        return set()  # sent inline: no queue to choose
    try:
        return set(
            NotificationLog.objects.filter(id__in=log_ids, type_notification__in=DESK_TYPES).values_list(
                "id", flat=True
            )
        )
    except DatabaseError:
        logger.warning("could not read the types of %d notification(s): all go to the normal queue", len(log_ids))
        return set()


def forget_redelivery(log_ids: list[int]) -> None:
    """Make unpublished waiting rows due for the relay's next pass (the database usually still answers)."""
    from django.db import DatabaseError

    from .models import NotificationLog, Statut

    try:
        NotificationLog.objects.filter(id__in=log_ids, statut=Statut.EN_ATTENTE).update(date_tentative_prochaine=None)
    except DatabaseError:
        logger.warning("could not clear the redelivery time of %d unpublished notification(s)", len(log_ids))
