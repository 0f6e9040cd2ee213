"""A worker cut off from the servers fails and recovers within bounds instead of hanging for good."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from billiard.exceptions import SoftTimeLimitExceeded

from radgestmat.celery import BoundedEventPublish, app
from radgestmat.testing.redis import redis_server


def test_a_heartbeat_publish_while_redis_is_unreachable_gives_up_instead_of_hanging(tmp_path):
    """GIVEN a worker's event connection to a Redis that then goes away (what a cut looks like once the
    connection is dropped) WHEN the worker publishes its heartbeat as Celery does (retry=True) THEN the
    publish gives up after one try instead of reconnecting forever in the worker's main process."""
    with redis_server(tmp_path) as (process, port):
        connection = app.connection_for_write(f"redis://127.0.0.1:{port}/0")
        dispatcher = app.events.Dispatcher(connection, hostname="cut@test", enabled=True)
        BoundedEventPublish(SimpleNamespace()).start(SimpleNamespace(event_dispatcher=dispatcher))
        dispatcher.send("worker-heartbeat", retry=True)  # connected and published
    # redis_server stopped it: nothing listens on the port any more.
    began = time.monotonic()
    thread = threading.Thread(target=lambda: dispatcher.send("worker-heartbeat", retry=True), daemon=True)
    thread.start()
    thread.join(timeout=30)

    assert not thread.is_alive(), "the heartbeat publish still retries after 30 s"
    assert time.monotonic() - began < 30
    # Celery keeps an event it could not publish aside (buffer_while_offline) instead of raising.
    assert len(dispatcher._outbound_buffer) == 1


@pytest.mark.django_db
def test_a_send_cut_short_by_the_soft_time_limit_is_retried(monkeypatch, settings):
    """A soft time limit firing before the row was claimed (a database that stopped answering) retries
    the task instead of acknowledging it as done (the row would wait RELAY_REDELIVER_MINUTES).
    The limit cannot fire in an in-process task, so the claim raises it here."""
    from notifications import sending
    from tasks import send_notification

    calls = []

    def claim_cut_short(log_id, *, now):
        calls.append(log_id)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(sending, "claim_group", claim_cut_short)
    result = send_notification.apply((12345,))

    assert len(calls) == settings.NOTIFICATION_MAX_ATTEMPTS  # tried, then retried, not given up at once
    assert isinstance(result.result, SoftTimeLimitExceeded)


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_connections_have_connect_statement_and_keepalive_timeouts():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's connection options; CI runs this file again with DATABASE_URL on PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"
    params = connection.connection.info.get_parameters()
    assert params["connect_timeout"] == "5"
    assert params["keepalives_idle"] == "10"
