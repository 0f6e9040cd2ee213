"""Redis (the broker) down while staff work: what they do is saved, the page answers, and the relay sends later."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Attribution
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, Statut, TypeNotification
from notifications.relay import due_rows
from radgestmat.celery import app
from radgestmat.tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(eager_celery, settings):
    """Tasks are really published, to a broker address where nothing listens (Redis stopped)."""
    eager_celery.conf.task_always_eager = False
    previous = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app.close()  # drop the producer pool bound to the previous address
    yield
    app.conf.broker_url = previous
    app.close()


def test_a_loan_lent_while_redis_is_down_is_saved_and_left_to_the_relay(staff_client, broker_down, settings):
    """GIVEN the broker unreachable WHEN staff lend through the lend form THEN the loan is saved, the page
    redirects to it (no server error), and the CREATION rows wait for the relay's redelivery time."""
    materiel = MaterielFactory(code="CAM-DOWN")
    client = ClientFactory(name="Alice Martin", email="alice@example.org", phone="+33612345678")
    due = timezone.localtime() + timezone.timedelta(days=5)

    response = staff_client.post(
        reverse("loan_lend"),
        {
            "materiel": "CAM-DOWN",
            "client": f"Alice Martin · #{client.pk}",
            "date_retour_prevue": due.strftime("%Y-%m-%dT%H:%M"),
        },
    )

    loan = Attribution.objects.get(materiel=materiel)
    assert response.status_code == 302
    assert response["Location"] == reverse("loan_detail", args=[loan.pk])
    rows = NotificationLog.objects.filter(attribution=loan, type_notification=TypeNotification.CREATION)
    assert [row.canal for row in rows] == ["EMAIL"]
    assert all(row.statut == Statut.EN_ATTENTE and row.date_tentative_prochaine is not None for row in rows)
    later = max(row.date_tentative_prochaine for row in rows)
    assert set(due_rows(later).filter(attribution=loan).values_list("pk", flat=True)) == {row.pk for row in rows}
