"""The channels' real servers, from the test kit (radgestmat.testing): the SMTP sink and the fake Twilio Messages API."""

from __future__ import annotations

import pytest

from radgestmat import queues
from radgestmat.testing.smtp import SmtpSink
from radgestmat.testing.twilio import TWILIO_SID, TwilioScript
from radgestmat.testing.workers import close_other_database_connections, purge_queues


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(keep_messages=True).up()
    settings.EMAIL_BACKEND = "notifications.channels.smtp_backend.PatientEmailBackend"
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "RadGestMat <pret@example.org>"
    settings.ORGANISATION_REPLY_TO = "accueil@example.org"
    yield sink
    if sink.release is not None:
        sink.release.set()
    sink.down()
    from notifications.channels.email import drop_connection

    drop_connection()


@pytest.fixture
def redis_db(settings):
    """The Redis of REDIS_URL with no daily-cap counters."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.ping()  # fails (never skips) when Redis is missing
    for key in client.scan_iter("radgestmat:cap:*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("radgestmat:cap:*"):
        client.delete(key)


@pytest.fixture
def fake_twilio(httpserver, settings):
    """pytest-httpserver answering like Twilio's Messages API; the real `twilio` client is pointed at it."""
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.TWILIO_SMS_FROM = "+15005550006"
    settings.TWILIO_API_BASE_URL = httpserver.url_for("/").rstrip("/")
    settings.TWILIO_TIMEOUT = 3
    settings.WHATSAPP_ENABLED = True
    settings.PUBLIC_BASE_URL = "https://radgestmat.example.org"
    return TwilioScript(httpserver)


def consent_to_whatsapp(client, **preferences):
    """The borrower agreed to WhatsApp (it is opt-in): their preferences say so, with any other ``preferences``."""
    from notifications.models import NotificationPreferences

    prefs, _created = NotificationPreferences.objects.update_or_create(
        client=client, defaults={"notifications_whatsapp": True, **preferences}
    )
    return prefs


def make_log(
    type_notification: str = "CREATION",
    canal: str = "EMAIL",
    *,
    attribution=None,
    audience: str = "CLIENT",
    niveau_escalade: int = 0,
    **client_fields,
):
    """One planned row for a fresh loan (written directly, no signals), due now."""
    from django.utils import timezone

    from assets.tests.factories import AttributionFactory, ClientFactory
    from notifications.models import NotificationLog

    if attribution is None:
        client = ClientFactory(**client_fields)
        if canal != "EMAIL":
            consent_to_whatsapp(client)
        attribution = AttributionFactory(client=client)
    return NotificationLog.objects.create(
        attribution=attribution,
        type_notification=type_notification,
        canal=canal,
        audience=audience,
        niveau_escalade=niveau_escalade,
        date_scheduled=timezone.now(),
        duree_emprunt=attribution.duree,
    )


@pytest.fixture(params=[False, True], ids=["rule-times", "learning-on"])
def send_time_learning(request, settings):
    """Run a timing-promise test with the learned send time off (the default) and on.

    With learning on, the planning goes through the learner (choices stored and reused, the
    checks' wider candidate selection, re-decisions on extension), but it never has enough
    history to move a reminder: these tests compute the rule's times. The simulated week
    lowers the threshold again and checks the learned times it stores (test_simulated_week).
    The bounds of learned times, and learned times reaching the rows, are tested in test_send_time.
    """
    settings.SEND_TIME_LEARNING = request.param
    settings.SEND_TIME_MIN_REMINDERS = 10**6
    return request.param


QUEUES = queues.ALL


def purge_broker() -> None:
    from radgestmat.celery import app

    purge_queues(app, QUEUES)


@pytest.fixture
def worker_connections_closed():
    """After a test with a worker thread: its kept PostgreSQL connection would stop the test database being dropped."""
    yield
    close_other_database_connections()


@pytest.fixture
def empty_broker():
    purge_broker()
    yield
    purge_broker()


@pytest.fixture
def live_worker(worker_connections_closed, empty_broker, celery_worker):
    """A real worker thread on Redis: Celery's `celery_worker` fixture on our app (the root conftest.py)."""
    return celery_worker
