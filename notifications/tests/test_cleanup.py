"""The nightly cleanup: old finished logs and expired task results go, in batches; pending rows stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

import tasks
from notifications.models import NotificationLog, Statut

from .conftest import make_log

pytestmark = pytest.mark.django_db


def aged(log, days, statut):
    NotificationLog.objects.filter(pk=log.pk).update(created_at=timezone.now() - timedelta(days=days), statut=statut)
    return log


def test_it_deletes_old_finished_logs_and_expired_results_in_batches(settings):
    settings.NOTIFICATION_RETENTION_DAYS = 90
    settings.CLEANUP_BATCH_SIZE = 2
    old_sent = [aged(make_log(), 91, Statut.ENVOYEE) for _ in range(5)]
    old_waiting = aged(make_log(), 120, Statut.EN_ATTENTE)
    recent = aged(make_log(), 89, Statut.ENVOYEE)
    TaskResult.objects.create(task_id="old", status="SUCCESS")
    TaskResult.objects.create(task_id="new", status="SUCCESS")
    # date_done is auto_now: age the old one afterwards (results expire after a day by default).
    TaskResult.objects.filter(task_id="old").update(date_done=timezone.now() - timedelta(days=2))

    result = tasks.cleanup_old_notifications.apply(throw=True).get()

    assert result == {"notifications": 5, "task_results": 1, "group_results": 0}
    assert not NotificationLog.objects.filter(pk__in=[log.pk for log in old_sent]).exists()
    assert set(NotificationLog.objects.values_list("pk", flat=True)) == {old_waiting.pk, recent.pk}
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]
