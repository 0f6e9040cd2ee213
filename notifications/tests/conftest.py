"""Real servers for the channels: an in-process SMTP server (aiosmtpd) and a fake Twilio Messages API."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

TWILIO_SID = "AC00000000000000000000000000000000"
MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SmtpSink:
    """What the SMTP server received, and how it should answer next."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list = field(default_factory=list)
    envelopes: list = field(default_factory=list)
    rcpt_reply: str | None = None  # e.g. "451 4.3.0 Try again later" or "550 5.1.1 No such user"
    data_reply: str | None = None
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event | None = None  # when set, DATA waits for it before answering
    accept_login: bool | None = None  # None: no AUTH offered; False: every login gets 535 (then `restart()`)
    controller: Controller | None = None

    def start(self) -> None:
        if self.accept_login is None:
            self.controller = Controller(self, hostname=self.host, port=self.port)
        else:
            self.controller = Controller(
                self, hostname=self.host, port=self.port, authenticator=self.authenticate, auth_require_tls=False
            )
        self.controller.start()

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=bool(self.accept_login), handled=False)

    def restart(self) -> None:
        """Stop and start again on the same port: open client connections are cut."""
        self.controller.stop()
        self.start()

    sessions: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.received.set()
        if self.release is not None:
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return self.data_reply or "250 Message accepted"


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(port=free_port())
    sink.start()
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
    sink.controller.stop()
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
    return FakeTwilio(httpserver)


class FakeTwilio:
    def __init__(self, httpserver):
        self.server = httpserver
        self._count = 0

    def accept(self, times: int = 1) -> None:
        for _ in range(times):
            self._count += 1
            sid = f"SM{self._count:032d}"
            self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(
                {"sid": sid, "status": "queued", "error_code": None, "error_message": None}, status=201
            )

    def fail(self, status: int, code: int | None, message: str = "Error") -> None:
        body = {"status": status, "message": message, "more_info": "https://www.twilio.com/docs/errors"}
        if code is not None:
            body["code"] = code
        self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(body, status=status)

    @property
    def requests(self) -> list:
        return [request for request, _response in self.server.log]

    def forms(self) -> list[dict]:
        return [request.form.to_dict() for request in self.requests]


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


QUEUES = ("default", "notifications")


def purge_broker() -> None:
    from radgestmat.celery import app

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.ping()  # fails (never skips) when Redis is missing
        client.delete(*QUEUES, "unacked", "unacked_index")


@pytest.fixture
def worker_connections_closed():
    from django.db import connection

    yield
    if connection.vendor == "postgresql":
        # The worker thread keeps its connection (CONN_MAX_AGE) and has ended: close it for
        # PostgreSQL, or the test database cannot be dropped at the end of the session.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def empty_broker():
    purge_broker()
    yield
    purge_broker()


@pytest.fixture
def live_worker(worker_connections_closed, empty_broker, celery_worker):
    """A real worker thread on Redis: Celery's `celery_worker` fixture on our app (the root conftest.py)."""
    return celery_worker
