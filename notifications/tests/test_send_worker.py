"""A real Celery worker on Redis: retries end in ECHEC_PERMANENT, a duplicate message sends nothing,
and a worker killed mid-send never leads to a second message at the SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from assets.services import lend
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, Statut
from radgestmat.celery import app
from radgestmat.testing.net import wait_until as wait_for
from radgestmat.testing.processes import celery_worker_command
from tasks import send_notification

from .conftest import QUEUES, consent_to_whatsapp, make_log, purge_broker

BASE_DIR = Path(django_settings.BASE_DIR)


def broker_idle() -> bool:
    with app.connection_for_write() as conn:
        client = conn.default_channel.client  # type: ignore[attr-defined]  # kombu-stubs: StdChannel; Redis's channel has its client
        return all(client.llen(queue) == 0 for queue in QUEUES) and client.hlen("unacked") == 0


@pytest.mark.django_db(transaction=True)
def test_three_transient_failures_end_in_echec_permanent(live_worker, smtp_sink, settings):
    settings.NOTIFICATION_RETRY_BASE_DELAY = 1
    settings.NOTIFICATION_RETRY_JITTER = 0
    smtp_sink.rcpt_reply = "451 4.3.0 Try again later"
    log = make_log("CREATION", "EMAIL")

    send_notification.delay(log.pk)

    row = wait_for(
        lambda: NotificationLog.objects.filter(pk=log.pk, statut=Statut.ECHEC_PERMANENT).first(),
        what="the row to fail permanently",
    )
    assert row.nb_tentatives == 3
    assert "451" in row.erreur_message
    assert smtp_sink.messages == []
    wait_for(broker_idle, what="the broker to be idle")


@pytest.mark.django_db(transaction=True)
def test_a_second_copy_of_the_task_message_sends_nothing(live_worker, smtp_sink):
    log = make_log("CREATION", "EMAIL")

    send_notification.delay(log.pk)
    send_notification.delay(log.pk)

    wait_for(lambda: NotificationLog.objects.filter(pk=log.pk, statut=Statut.ENVOYEE).exists(), what="the send")
    wait_for(broker_idle, what="both messages to be processed")
    assert len(smtp_sink.messages) == 1
    assert NotificationLog.objects.get(pk=log.pk).nb_tentatives == 1


@pytest.mark.django_db(transaction=True)
def test_lending_reaches_the_borrowers_inbox_through_the_worker(live_worker, smtp_sink, settings):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="camille@example.org", language="en")
    now = timezone.now()

    lend(materiel=MaterielFactory(code="CAM-7"), client=client, due=now + timezone.timedelta(days=3), now=now)

    assert smtp_sink.received.wait(30), "no email reached the SMTP server"
    assert [m["Subject"] for m in smtp_sink.messages if m["Subject"].startswith("Loan confirmed: ")]
    row = wait_for(
        lambda: NotificationLog.objects.filter(type_notification="CREATION", statut=Statut.ENVOYEE).first(),
        what="the row to be recorded as sent",
    )
    assert row.destinataire == "camille@example.org"


@pytest.mark.django_db(transaction=True)
def test_a_refused_whatsapp_falls_back_to_an_email_sent_by_the_worker(live_worker, smtp_sink, fake_twilio):
    fake_twilio.fail(400, 63003, "Channel could not find To address")
    log = make_log("CREATION", "WHATSAPP", email="camille@example.org")
    consent_to_whatsapp(log.attribution.client, notifications_email=False)

    send_notification.delay(log.pk)

    assert smtp_sink.received.wait(30), "the fallback email never arrived"
    fallback = wait_for(
        lambda: NotificationLog.objects.filter(fallback_of=log, statut=Statut.ENVOYEE).first(),
        what="the fallback row to be sent",
    )
    assert fallback.canal == "EMAIL"
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.ECHEC_PERMANENT
    assert smtp_sink.envelopes[0].rcpt_tos == ["camille@example.org"]


class WorkerConnections:
    """The database connections the worker thread opens (PostgreSQL backend pids)."""

    def __init__(self):
        self.pids: list[int] = []

    def __call__(self, sender, connection, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            self.pids.append(connection.connection.info.backend_pid)


@pytest.fixture
def worker_connections():
    from django.db.backends.signals import connection_created

    if connection.vendor != "postgresql":
        pytest.skip("SQLite connections are not kept between tasks (CONN_MAX_AGE=0); CI runs this on PostgreSQL")
    recorder = WorkerConnections()
    connection_created.connect(recorder)
    yield recorder
    connection_created.disconnect(recorder)


def send_and_wait(log: NotificationLog) -> NotificationLog:
    send_notification.delay(log.pk)
    return wait_for(
        lambda: NotificationLog.objects.filter(pk=log.pk, statut=Statut.ENVOYEE).first(), timeout=20, what="the send"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_one_send_to_the_next(live_worker, worker_connections, smtp_sink):
    """Celery's Django fixup would open a PostgreSQL connection per task; CONN_MAX_AGE applies instead."""
    for _ in range(3):
        send_and_wait(make_log("CREATION", "EMAIL"))

    assert len(smtp_sink.messages) == 3
    assert len(worker_connections.pids) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_postgresql_dropped_is_replaced_before_the_next_send(
    live_worker, worker_connections, smtp_sink
):
    """GIVEN a worker whose kept connection PostgreSQL has closed (a restart, an idle timeout)
    WHEN the next notification comes
    THEN the worker reconnects and sends it at once, on its first attempt (no retry a minute later)."""
    send_and_wait(make_log("CREATION", "EMAIL"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [worker_connections.pids[0]])

    row = send_and_wait(make_log("CREATION", "EMAIL"))

    assert row.nb_tentatives == 1
    assert len(worker_connections.pids) == 2
    assert len(smtp_sink.messages) == 2


def shared_database_url() -> str:
    """The URL of the test database, for a worker in another process (SQLite tests use a file too)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def worker_env(sink) -> dict:
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": shared_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "EMAIL_BACKEND": "notifications.channels.smtp_backend.PatientEmailBackend",
        "EMAIL_HOST": sink.host,
        "EMAIL_PORT": str(sink.port),
        "EMAIL_TIMEOUT": "30",
        "LOG_LEVEL": "INFO",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def start_worker_process(env: dict, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        celery_worker_command(
            name,
            pool="solo",
            concurrency=1,
            queues=",".join(QUEUES),
            extra_args=("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ),
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> str:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output or ""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_never_causes_a_second_message(eager_celery, smtp_sink):
    """GIVEN a worker stuck in the middle of an SMTP DATA exchange
    WHEN it is SIGKILLed and the broker redelivers its unacknowledged message to a new worker
    THEN the new worker finds the row claimed and the SMTP server has received exactly one message."""
    eager_celery.conf.task_always_eager = False
    purge_broker()
    smtp_sink.release = threading.Event()
    log = make_log("CREATION", "EMAIL")
    env = worker_env(smtp_sink)
    first = start_worker_process(env, "first")
    second = None
    try:
        send_notification.delay(log.pk)
        assert smtp_sink.received.wait(20), stop(first)
        stop(first, signal.SIGKILL)
        smtp_sink.release.set()

        # What Redis does once the visibility timeout has passed, without waiting for it.
        with app.connection_for_write(transport_options={"visibility_timeout": 0}) as conn:
            qos = conn.default_channel.qos
            wait_for(lambda: conn.default_channel.client.hlen("unacked") == 1, what="the unacked message")
            qos.restore_visible(num=10, interval=1)

        second = start_worker_process(env, "second")
        wait_for(broker_idle, timeout=20, what="the redelivered message to be processed")
        second_output = stop(second)
        second = None
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second, signal.SIGKILL)
        purge_broker()

    assert f"notification {log.pk} not claimed" in second_output
    assert len(smtp_sink.messages) == 1
    row = NotificationLog.objects.get(pk=log.pk)
    assert row.statut == Statut.EN_COURS and row.nb_tentatives == 1  # left for the relay's stranded-row recovery
