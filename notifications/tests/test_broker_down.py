"""Redis (the broker) down while staff work: what they do is saved, the page answers, and the relay sends later."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Attribution, Client, Materiel
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, Statut, TypeNotification
from radgestmat.celery import app
from radgestmat.testing.net import free_port
from radgestmat.testing.redis import redis_server

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def broker_at(url: str):
    """Tasks are really published, to ``url``."""
    previous, eager = app.conf.broker_url, app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.conf.broker_url = url  # type: ignore[misc]  # celery-types: conf settings are writable at run time
    forget_broker_connections()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = previous, eager  # type: ignore[misc]  # as above
        forget_broker_connections()


def forget_broker_connections() -> None:
    """Drop the app's producer pool, bound to the previous address."""
    app.close()
    # close() forgets the producer pool only when the app had opened a connection pool itself.
    app.amqp._producer_pool = None  # type: ignore[attr-defined]  # celery-types omit the private pool


@pytest.fixture
def broker_down(eager_celery):
    """A broker address where nothing listens (Redis stopped)."""
    with broker_at(f"redis://127.0.0.1:{free_port()}/0"):
        yield


@pytest.fixture
def broker_frozen(eager_celery, tmp_path):
    """A Redis that accepts connections but never answers (SIGSTOPped: hung, or cut off mid-connection)."""
    with redis_server(tmp_path) as (process, port), broker_at(f"redis://127.0.0.1:{port}/0"):
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)


def lend_through_the_form(staff_client, code: str):
    materiel: Materiel = MaterielFactory(code=code)  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    client: Client = ClientFactory(name="Alice Martin", email="alice@example.org", phone="+33612345678")  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    due = timezone.localtime() + timedelta(days=5)
    response = staff_client.post(
        reverse("loan_lend"),
        {
            "materiel": code,
            "client": f"Alice Martin · #{client.pk}",
            "date_retour_prevue": due.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    return response, Attribution.objects.get(materiel=materiel)


def test_a_loan_lent_while_redis_is_down_is_saved_and_left_to_the_relay(staff_client, broker_down, settings):
    """GIVEN the broker unreachable WHEN staff lend through the lend form THEN the loan is saved, the page
    redirects to it (no server error), and the CREATION rows are due for the relay's next pass (the failed
    publish left no redelivery time that would hold them back RELAY_REDELIVER_MINUTES)."""
    response, loan = lend_through_the_form(staff_client, "CAM-DOWN")

    assert response.status_code == 302
    assert response["Location"] == reverse("loan_detail", args=[loan.pk])
    rows = NotificationLog.objects.filter(attribution=loan, type_notification=TypeNotification.CREATION)
    assert [row.canal for row in rows] == ["EMAIL"]
    assert all(row.statut == Statut.EN_ATTENTE and row.date_tentative_prochaine is None for row in rows)
    relayed_next = NotificationLog.objects.to_relay(timezone.now()).filter(attribution=loan)
    assert set(relayed_next.values_list("pk", flat=True)) == {row.pk for row in rows}


@pytest.mark.timeout(60)
def test_a_loan_lent_while_redis_is_frozen_still_answers(staff_client, broker_frozen):
    """GIVEN a Redis that accepts the connection and never answers WHEN staff lend THEN the page answers
    (after the broker's socket timeout; it used to hang for good) and the loan and its rows wait for the relay."""
    response, loan = lend_through_the_form(staff_client, "CAM-FROZEN")

    assert response.status_code == 302
    rows = NotificationLog.objects.filter(attribution=loan, type_notification=TypeNotification.CREATION)
    assert rows and all(row.statut == Statut.EN_ATTENTE and row.date_tentative_prochaine is None for row in rows)
