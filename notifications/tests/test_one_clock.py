"""One clock: workers decide "due", claims and stranded claims by the database's clock, not their own.

A worker's clock is shifted with time-machine (it moves Python's clock only); the
database keeps the real time, as another machine's clock would.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

import tasks
from notifications.models import NotificationLog, Statut

from .conftest import make_log

pytestmark = pytest.mark.django_db

SKEW = timedelta(minutes=3)


@pytest.fixture(autouse=True)
def database_clock(settings):
    settings.NOTIFICATION_CLOCK = "database"


def reload(log):
    log.refresh_from_db()
    return log


def test_a_worker_whose_clock_is_behind_sends_a_due_row(smtp_sink):
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(date_scheduled=timezone.now() - timedelta(seconds=30))

    with time_machine.travel(timezone.now() - SKEW, tick=False):
        tasks.send_notification.apply((log.pk,))

    assert reload(log).statut == Statut.ENVOYEE
    assert len(smtp_sink.messages) == 1


def test_a_worker_whose_clock_is_ahead_does_not_relay_a_row_early(django_capture_on_commit_callbacks, smtp_sink):
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(date_scheduled=timezone.now() + timedelta(minutes=2))

    with time_machine.travel(timezone.now() + SKEW, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = tasks.dispatch_due_notifications.apply().get()

    assert report["enqueued"] == 0
    assert reload(log).statut == Statut.EN_ATTENTE
    assert smtp_sink.messages == []


def test_a_worker_whose_clock_is_ahead_does_not_claim_a_row_early(smtp_sink):
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(date_scheduled=timezone.now() + timedelta(minutes=2))

    with time_machine.travel(timezone.now() + SKEW, tick=False):
        tasks.send_notification.apply((log.pk,))

    assert reload(log).statut == Statut.EN_ATTENTE
    assert smtp_sink.messages == []


def test_a_worker_whose_clock_is_ahead_does_not_take_a_live_claim_for_a_dead_one(
    django_capture_on_commit_callbacks, settings, smtp_sink
):
    settings.CELERY_TASK_TIME_LIMIT = 90  # a claim is stranded after 90 + 30 s
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS, date_claimed=timezone.now() - timedelta(seconds=10), nb_tentatives=1
    )

    with time_machine.travel(timezone.now() + SKEW, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = tasks.dispatch_due_notifications.apply().get()

    assert report["recovered"] == 0
    assert reload(log).statut == Statut.EN_COURS
    assert smtp_sink.messages == []
