"""django-post-office one task per mail, for bench/delivery.py: the task a project writes to send each
queued ``Email`` row on its own (post-office's ``dispatch``: send, status, log row).

Loaded with ``-I bench.support.peer_tasks`` into the peer workers only (bench/peer_settings.py),
with the options of `tasks.send_notification` (acks_late, reject_on_worker_lost, no result).
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="bench.post_office_one", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def post_office_one(email_id: int) -> None:
    from post_office.models import STATUS, Email

    email = Email.objects.select_related("template").get(pk=email_id, status=STATUS.queued)
    email.dispatch(disconnect_after_delivery=False)
