"""A worker checks its kept database connection at most once a second (DB_HEALTH_CHECK_INTERVAL), and a
task's first query, the database's clock, reconnects by itself when the connection died meanwhile."""

from __future__ import annotations

import pytest
from django.db import connection

from radgestmat import clock
from radgestmat.celery import close_old_database_connections


class FakeTask:
    class request:
        is_eager = False


class FakeWrapper:
    connection = object()
    health_check_enabled = True

    def __init__(self):
        self.health_check_done = False


@pytest.fixture
def wrapper(monkeypatch, settings):
    settings.NOTIFICATION_CLOCK = "database"
    fake = FakeWrapper()
    monkeypatch.setattr("django.db.close_old_connections", lambda: None)
    monkeypatch.setattr("django.db.connections.all", lambda initialized_only=False: [fake])
    return fake


def test_the_check_runs_once_then_not_again_within_the_interval(wrapper, settings):
    settings.DB_HEALTH_CHECK_INTERVAL = 60

    close_old_database_connections(task=FakeTask)
    assert wrapper.health_check_done is False  # this task checks

    wrapper.health_check_done = False  # what close_old_connections does after each task
    close_old_database_connections(task=FakeTask)
    assert wrapper.health_check_done is True  # the next one, a moment later, does not


def test_with_a_zero_interval_every_task_checks(wrapper, settings):
    settings.DB_HEALTH_CHECK_INTERVAL = 0
    for _ in range(3):
        wrapper.health_check_done = False
        close_old_database_connections(task=FakeTask)
        assert wrapper.health_check_done is False


def test_under_the_process_clock_every_task_checks(wrapper, settings):
    """Then a task's first query is no clock query that could reconnect: Django's check stays on."""
    settings.NOTIFICATION_CLOCK = "process"
    settings.DB_HEALTH_CHECK_INTERVAL = 60
    for _ in range(2):
        wrapper.health_check_done = False
        close_old_database_connections(task=FakeTask)
        assert wrapper.health_check_done is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_clock_reconnects_when_postgresql_dropped_the_connection(settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL drops a connection here; CI runs this on PostgreSQL")
    import psycopg

    settings.NOTIFICATION_CLOCK = "database"
    clock.now()
    pid = connection.connection.info.backend_pid
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    assert clock.now() is not None
    assert connection.connection.info.backend_pid != pid
