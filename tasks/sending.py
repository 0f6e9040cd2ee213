from __future__ import annotations

from celery import shared_task


@shared_task(name="tasks.send_notification")
def send_notification(log_id: int) -> None:
    raise NotImplementedError("the notification engine (issue 3) fills this in")
