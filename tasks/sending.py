from __future__ import annotations

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from notifications.exceptions import RetryLater


class NotificationTask(Task):
    """Retries when the send service asks, after the delay it recorded in ``date_tentative_prochaine``.

    Celery's own backoff jitter is "full" (anything from 0 s), which would retry at once;
    the service's delay never goes below the configured base delay.
    """

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, **options):
        if countdown is None and eta is None and isinstance(exc, RetryLater):
            countdown = exc.retry_in
        return super().retry(args, kwargs, exc, throw, eta, countdown, **options)


@shared_task(
    base=NotificationTask,
    bind=True,
    name="tasks.send_notification",
    # A database that is briefly unreachable is retried too (default_retry_delay); the row was not claimed.
    # So is a send the soft time limit cut short: a claimed row was put back or marked (see the service),
    # and the retry's claim decides; acknowledging it left the row to the relay's redelivery delay.
    autoretry_for=(RetryLater, OperationalError, InterfaceError, SoftTimeLimitExceeded),
    default_retry_delay=settings.NOTIFICATION_RETRY_BASE_DELAY,
    retry_backoff=False,
    max_retries=settings.NOTIFICATION_MAX_ATTEMPTS - 1,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
)
def send_notification(self, log_id: int) -> str | None:
    """Send one NotificationLog row (see `notifications.sending`)."""
    from notifications import sending

    return sending.send_notification(log_id)  # at the database's time, which the claim reads
