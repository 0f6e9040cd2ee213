"""Parallel wrong logins against the real Redis cache: at most LOGIN_FAILURE_LIMIT of them get a password check."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import connections
from django.test import RequestFactory

from radgestmat.login import LoginThrottle, ThrottledAuthenticationForm

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 24
ADDRESS = "203.0.113.24"


@pytest.fixture
def counters():
    throttle = LoginThrottle("guichet", ADDRESS)
    cache.delete_many([throttle.pair_key, throttle.ip_key])
    yield throttle
    cache.delete_many([throttle.pair_key, throttle.ip_key])


def test_parallel_wrong_logins_get_at_most_the_limit_of_password_checks(django_user_model, settings, counters):
    """GIVEN 24 threads posting a wrong password for one user from one address at the same instant
    (the real, slow password hasher), THEN only LOGIN_FAILURE_LIMIT of them reach the password check."""
    settings.LOGIN_FAILURE_LIMIT = 5
    django_user_model.objects.create_user("guichet", password="correct horse battery 42", is_staff=True)
    checks: list[str] = []
    checks_lock = threading.Lock()

    def count_check(sender, credentials, **kwargs):
        with checks_lock:
            checks.append(credentials["username"])

    start = threading.Barrier(PARALLEL)
    outcomes: list[str | None] = []  # ValidationError.code may be None

    def wrong_login() -> None:
        request = RequestFactory().post("/login/", REMOTE_ADDR=ADDRESS)
        form = ThrottledAuthenticationForm(request, data={"username": "guichet", "password": "wrong"})
        start.wait()
        try:
            form.is_valid()
            outcomes.append(form.errors.as_data()["__all__"][0].code)
        finally:
            connections.close_all()

    user_login_failed.connect(count_check)
    try:
        threads = [threading.Thread(target=wrong_login) for _ in range(PARALLEL)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        user_login_failed.disconnect(count_check)

    assert len(outcomes) == PARALLEL
    assert len(checks) == 5, f"{len(checks)} password checks for a limit of 5"
    assert sorted(outcomes).count("throttled") == PARALLEL - 5
    assert sorted(outcomes).count("invalid_login") == 5
