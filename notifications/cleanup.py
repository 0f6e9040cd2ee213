"""Retention: delete notification logs past their retention and expired Celery task results.

Deletes in batches, each in its own short transaction, so the nightly cleanup
never holds a long lock on the tables the relay and the workers use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from .models import FINAL_STATUTS, NotificationLog


def delete_in_batches(queryset, *, batch_size: int) -> int:
    removed = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
            if not ids:
                return removed
            model = queryset.model
            _, per_model = model.objects.filter(pk__in=ids).delete()
            removed += per_model.get(model._meta.label, 0)
        if len(ids) < batch_size:
            return removed


def cleanup_old_notifications(*, now: datetime) -> dict[str, int]:
    """Delete finished logs older than NOTIFICATION_RETENTION_DAYS and expired task results.

    Rows still waiting or being sent are kept whatever their age. Returns how many of each were removed.
    """
    from celery import current_app
    from django_celery_results.models import GroupResult, TaskResult

    batch = settings.CLEANUP_BATCH_SIZE
    cutoff = now - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    logs = delete_in_batches(
        NotificationLog.objects.filter(created_at__lt=cutoff, statut__in=FINAL_STATUTS), batch_size=batch
    )
    expires = current_app.conf.result_expires
    results = groups = 0
    if expires:
        expires = expires if isinstance(expires, timedelta) else timedelta(seconds=expires)
        results = delete_in_batches(TaskResult.objects.filter(date_done__lt=now - expires), batch_size=batch)
        groups = delete_in_batches(GroupResult.objects.filter(date_done__lt=now - expires), batch_size=batch)
    return {"notifications": logs, "task_results": results, "group_results": groups}
