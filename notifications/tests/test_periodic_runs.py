"""Beat's runs reach the worker whatever its clock says, and a run overtaken by a newer one is skipped.

A real in-process worker on Redis; beat's scheduler class from settings publishes
the runs. The worker's clock is moved with time-machine after beat published.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from celery.utils.imports import symbol_by_name
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_results.models import TaskResult

from notifications.models import NotificationLog, Statut
from radgestmat.celery import app
from radgestmat.testing.net import wait_until as wait_for

from .conftest import QUEUES, make_log, purge_broker

pytestmark = pytest.mark.usefixtures("worker_connections_closed")


@pytest.fixture
def beat(eager_celery):
    eager_celery.conf.task_always_eager = False
    purge_broker()
    call_command("setup_schedule", stdout=io.StringIO())
    scheduler = symbol_by_name(settings.CELERY_BEAT_SCHEDULER)(app=app)
    yield scheduler
    scheduler.sync()  # now, while the test database exists (django-celery-beat also syncs at exit)
    scheduler._dirty.clear()
    purge_broker()


def run_worker():
    return start_worker(
        app, pool="solo", concurrency=1, queues=list(QUEUES), perform_ping_check=False, shutdown_timeout=10
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_clock_is_three_minutes_ahead_still_runs_the_relay(beat, smtp_sink):
    log = make_log("CREATION", "EMAIL")

    beat.apply_async(beat.schedule["dispatch_due_notifications"])
    with time_machine.travel(timezone.now() + timedelta(minutes=3)), run_worker():
        wait_for(
            lambda: NotificationLog.objects.filter(pk=log.pk, statut=Statut.ENVOYEE).exists(),
            what="the relay run to send the due row",
        )

    assert len(smtp_sink.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_overtaken_by_a_newer_one_is_skipped(beat, settings):
    settings.CELERY_RESULT_EXTENDED = True
    entry = beat.schedule["check_notification_alerts"]
    beat.apply_async(entry)
    beat.apply_async(entry)  # the worker was away: two runs wait, the first is stale

    with run_worker():
        results = wait_for(
            lambda: (
                list(
                    TaskResult.objects.filter(task_name="tasks.check_notification_alerts", status="SUCCESS")
                    .order_by("date_done")
                    .values_list("result", flat=True)
                )
                if TaskResult.objects.filter(task_name="tasks.check_notification_alerts").count() == 2
                else None
            ),
            what="both runs to be processed",
        )

    assert results[0] == "null"  # skipped
    assert results[1] != "null"  # ran


@pytest.mark.django_db(transaction=True)
def test_with_beat_gone_the_workers_watchdog_runs_the_relay(eager_celery, smtp_sink, settings):
    """GIVEN no beat at all WHEN a row is due THEN a worker notices that no relay ran and starts one."""
    settings.RELAY_WATCHDOG_SECONDS = 1
    settings.RELAY_STALE_SECONDS = 2
    eager_celery.conf.task_always_eager = False
    purge_broker()
    from django.core.cache import cache

    cache.delete_many(["relay-ran", "relay-watchdog"])
    log = make_log("CREATION", "EMAIL")

    with run_worker():
        wait_for(
            lambda: NotificationLog.objects.filter(pk=log.pk, statut=Statut.ENVOYEE).exists(),
            what="a relay run started by the watchdog to send the due row",
            timeout=60,
        )
    purge_broker()

    assert len(smtp_sink.messages) == 1
