"""Retention: delete notification logs past their retention and expired Celery task results.

Deletes in batches, each in its own short transaction, so the nightly cleanup
never holds a long lock on the tables the relay and the workers use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DO_NOTHING, SET_NULL, Q

from .models import FINAL_STATUTS, NotificationLog


def delete_in_batches(queryset, *, batch_size: int, order: str = "pk") -> int:
    """Delete the rows of ``queryset`` ``batch_size`` at a time, each batch in its own short transaction.

    Walks the rows in ``(order, pk)`` order and resumes after the last row deleted, so a
    batch never scans again over what earlier ones removed (dead index entries until
    vacuum). Each batch is three short statements: take the ids, unlink the rows that
    fall back on them (``fallback_of`` is SET_NULL), delete — without Django's collector,
    which would load every row first.
    """
    model = queryset.model
    pk = model._meta.pk.attname
    keyset = [order, pk] if order != "pk" else [pk]
    queryset = queryset.order_by(*keyset)
    referrers = [relation for relation in model._meta.related_objects if relation.on_delete is not DO_NOTHING]
    # Unlinking SET_NULL referrers ourselves is all the collector would do; anything else (CASCADE…) is its job.
    raw = all(relation.on_delete is SET_NULL for relation in referrers)
    removed, last = 0, None
    while True:
        page = queryset
        if last is not None:
            page = page.filter(after(keyset, last))
        with transaction.atomic():
            rows = list(page.values_list(*keyset)[:batch_size])
            if not rows:
                return removed
            ids = [row[-1] for row in rows]
            doomed = model._base_manager.filter(pk__in=ids)
            if raw:
                for relation in referrers:
                    name = relation.field.name
                    relation.related_model._base_manager.filter(**{f"{name}__in": ids}).update(**{name: None})
                removed += doomed._raw_delete(doomed.db)
            else:
                removed += doomed.delete()[1].get(model._meta.label, 0)
        last = rows[-1]
        if len(rows) < batch_size:
            return removed


def after(keyset: list[str], last: tuple) -> Q:
    """Rows strictly after ``last`` in ``keyset`` order (``(a, b) > (x, y)``, spelled out for every database)."""
    if len(keyset) == 1:
        return Q(**{f"{keyset[0]}__gt": last[0]})
    first, second = keyset
    # The leading >= gives the index a range to start from; the OR alone would not.
    return Q(**{f"{first}__gte": last[0]}) & (Q(**{f"{first}__gt": last[0]}) | Q(**{f"{second}__gt": last[1]}))


def cleanup_old_notifications(*, now: datetime) -> dict[str, int]:
    """Delete finished logs older than NOTIFICATION_RETENTION_DAYS and expired task results.

    Rows still waiting or being sent are kept whatever their age. Returns how many of each were removed.
    """
    from celery import current_app
    from django_celery_results.models import GroupResult, TaskResult

    batch = settings.CLEANUP_BATCH_SIZE
    cutoff = now - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    logs = delete_in_batches(
        NotificationLog.objects.filter(created_at__lt=cutoff, statut__in=FINAL_STATUTS),
        batch_size=batch,
        order="created_at",
    )
    expires = current_app.conf.result_expires
    results = groups = 0
    if expires:
        expires = expires if isinstance(expires, timedelta) else timedelta(seconds=expires)
        results = delete_in_batches(
            TaskResult.objects.filter(date_done__lt=now - expires), batch_size=batch, order="date_done"
        )
        groups = delete_in_batches(
            GroupResult.objects.filter(date_done__lt=now - expires), batch_size=batch, order="date_done"
        )
    return {"notifications": logs, "task_results": results, "group_results": groups}
