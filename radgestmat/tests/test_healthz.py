"""`/healthz` against real parts: its own Redis, a real worker answering pings, then Redis stopped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from assets.tests.factories import AttributionFactory
from notifications.models import Canal, NotificationLog, Statut, TypeNotification
from notifications.schedule import register_schedule
from radgestmat.testing.processes import stop_process as stop
from radgestmat.testing.redis import redis_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat_ticked():
    """The schedule is registered and beat started the relay 30 s ago (django-celery-beat records each run)."""
    register_schedule()
    relay = PeriodicTask.objects.get(name="dispatch_due_notifications")
    relay.last_run_at = timezone.now() - timedelta(seconds=30)
    relay.save()
    return relay


@pytest.fixture
def own_redis(tmp_path, settings):
    with redis_server(tmp_path) as (proc, port):
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
        yield proc, port


@pytest.fixture
def worker_on(own_redis, eager_celery):
    """A real Celery worker consuming from our Redis (remote control on, so it answers pings)."""
    eager_celery.conf.task_always_eager = False
    _, port = own_redis
    app = Celery("healthz-test", broker=f"redis://127.0.0.1:{port}/0", set_as_current=False)
    with start_worker(app, perform_ping_check=False, shutdown_timeout=10):
        yield


def healthz(client):
    response = client.get("/healthz")
    return response.status_code, response.json()


def test_everything_answering_gives_200(client, own_redis, worker_on, beat_ticked):
    status, body = healthz(client)

    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["workers"] == {"ok": True, "count": 1}
    assert 25 <= body["checks"]["beat"]["last_tick_age_s"] <= 60
    assert body["checks"]["failures_last_hour"] == {"ok": True, "count": 0}


def test_redis_down_gives_503(client, own_redis, beat_ticked):
    proc, _ = own_redis
    stop(proc)

    status, body = healthz(client)

    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["workers"]["ok"] is False
    assert body["checks"]["database"] == {"ok": True}


def test_no_worker_answering_gives_503(client, own_redis, beat_ticked):
    status, body = healthz(client)

    assert status == 503
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["workers"] == {"ok": False, "count": 0}


def test_beat_silent_too_long_and_an_old_backlog_fail_it(client, settings, own_redis, worker_on, beat_ticked):
    now = timezone.now()
    beat_ticked.last_run_at = now - timedelta(minutes=settings.BEAT_STALE_AFTER_MINUTES + 1)
    beat_ticked.save()
    NotificationLog.objects.create(
        attribution=AttributionFactory(),
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.EMAIL,
        date_scheduled=now - timedelta(minutes=settings.NOTIFICATION_BACKLOG_MAX_MINUTES + 5),
    )

    status, body = healthz(client)

    assert status == 503
    assert body["checks"]["beat"]["ok"] is False
    assert body["checks"]["backlog"]["ok"] is False
    assert body["checks"]["backlog"]["oldest_waiting_age_s"] >= (settings.NOTIFICATION_BACKLOG_MAX_MINUTES + 5) * 60
    assert body["checks"]["redis"]["ok"] and body["checks"]["workers"]["ok"]


def test_it_counts_failures_of_the_last_hour_and_shows_no_secrets(client, settings, own_redis, beat_ticked):
    settings.TWILIO_AUTH_TOKEN = "a-secret-token-value"
    NotificationLog.objects.create(
        attribution=AttributionFactory(),
        type_notification=TypeNotification.CREATION,
        canal=Canal.EMAIL,
        date_scheduled=timezone.now(),
        statut=Statut.ECHEC_PERMANENT,
        erreur_message="550 mailbox unavailable",
    )

    response = client.get("/healthz")

    assert response.json()["checks"]["failures_last_hour"]["count"] == 1
    text = response.content.decode()
    for secret in ("a-secret-token-value", "127.0.0.1", "redis://", "550 mailbox", settings.SECRET_KEY):
        assert secret not in text
    assert response["Cache-Control"].startswith("max-age=0")


def test_one_live_beat_and_a_worker_give_200_not_a_server_error(client, own_redis, worker_on, beat_ticked):
    """The beat heartbeats are read from the broker's Redis; reading them on the connection the worker
    ping left waiting (BRPOP) swapped the two answers and /healthz failed with a server error."""
    import time

    import redis

    from radgestmat import beat_registry

    _, port = own_redis
    beat_registry.record_alive(redis.Redis(port=port), "beat-host:4242", time.time())

    for _ in range(3):
        status, body = healthz(client)

        assert status == 200, body
        assert body["checks"]["beat"]["instances"] == 1
