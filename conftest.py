"""Project-wide test rules.

Real workers come from Celery's own pytest fixtures (`celery.contrib.pytest`, loaded in pytest.ini):
`celery_worker` starts a worker thread on our app. pytest-celery's plugin (`-p no:celery`) is off:
its fixtures of the same names start Docker containers, and this project has no Docker engine
(its `celery_worker` would shadow Celery's, pytest-celery #442).

In CI (CI=true) a skipped test is a failure: a test that needs Redis, PostgreSQL
or Chromium must fail when its service is missing, never pass silently. The one
exception is a `postgres`-marked test during the SQLite run, since CI runs the
suite again on PostgreSQL.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in-process by default; tests about workers, acks and retries start a real worker instead."""
    from radgestmat.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def celery_app(eager_celery):
    """`celery_worker` (celery.contrib.pytest) runs our own app, its tasks published to Redis for real."""
    eager_celery.conf.task_always_eager = False
    return eager_celery


@pytest.fixture
def celery_worker_pool():
    return "solo"


@pytest.fixture
def celery_worker_parameters():
    from radgestmat import queues

    return {"queues": queues.ALL, "perform_ping_check": False, "shutdown_timeout": 10}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    from django.db import connection

    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"


@pytest.fixture
def staff_user(db):
    from assets.tests.factories import StaffFactory

    return StaffFactory(username="desk")


@pytest.fixture
def staff_client(client, staff_user):
    """A Django test client logged in as a front-desk staff user (staff, no extra permission)."""
    client.force_login(staff_user)
    return client
