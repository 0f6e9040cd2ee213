"""Server-error emails to ADMINS in production mode: no credentials, no clear addresses, and not a flood."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from radgestmat.testing.redis import redis_server

pytestmark = [pytest.mark.django_db, pytest.mark.urls("radgestmat.tests.urls_server_error")]

REDIS_PASSWORD = "Redis-pw-7f3a9c2e"
ADDRESS = "camille.martin@example.org"
PHONE = "+33612345678"


@pytest.fixture
def production(settings, tmp_path):
    """DEBUG off, ADMIN_EMAILS set, and broker and cache on a real password-protected redis-server."""
    with redis_server(tmp_path, password=REDIS_PASSWORD) as (_, port):
        url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
        settings.DEBUG = False
        settings.ADMINS = [("Ops", "ops@example.org")]
        settings.REDIS_URL = settings.CELERY_BROKER_URL = url
        settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": url}}
        settings.EMAIL_HOST_PASSWORD = "smtp-pw-91b2"
        settings.ERROR_EMAIL_INTERVAL_MINUTES = 10
        cache.clear()
        yield Client(raise_request_exception=False)


def everything_mailed() -> str:
    parts = []
    for message in mail.outbox:
        parts += [message.subject, message.body, *(content for content, _ in getattr(message, "alternatives", []))]
    return "\n".join(parts)


def test_a_server_error_email_holds_no_password_and_no_clear_address(production, staff_user):
    production.force_login(staff_user)

    response = production.get(
        f"/test-errors/broker/?q={ADDRESS}&phone={PHONE.replace('+', '%2B')}&e=camille%40example.org"
    )

    assert response.status_code == 500
    assert len(mail.outbox) == 1
    mailed = everything_mailed()
    assert "ConnectionError" in mailed and "/test-errors/broker/" in mailed  # still useful to the admin
    for secret in (REDIS_PASSWORD, "smtp-pw-91b2", ADDRESS, "camille%40example.org", "612345678"):
        assert secret not in mailed, f"{secret!r} in the error email"
    assert "c***@example.org" in mailed


def test_many_server_errors_send_one_email_per_distinct_error(production):
    for _ in range(30):
        assert production.get("/test-errors/broker/").status_code == 500
    for _ in range(10):
        assert production.get("/test-errors/other/").status_code == 500

    assert len(mail.outbox) == 2
    assert ["ConnectionError" in m.subject + m.body for m in mail.outbox] == [True, False]
