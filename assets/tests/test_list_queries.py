"""Every list page costs the same number of queries with 3 rows as with 30: no query per row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assets import services
from assets.models import Attribution, LoanEvent
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications.api import forget_scheduler_status
from notifications.models import Canal, NotificationLog, NotificationPreferences, Statut, TypeNotification


def add_rows(n: int, client=None) -> None:
    now = timezone.now()
    for i in range(n):
        overdue = i % 2 == 0
        loan: Attribution = AttributionFactory(  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
            client=client or ClientFactory(),
            date_debut=now - timedelta(hours=5),
            date_retour_prevue=now - timedelta(hours=1) if overdue else now + timedelta(hours=1 + i),
        )
        NotificationPreferences.objects.create(client=loan.client) if client is None else None
        for statut, canal in ((Statut.ENVOYEE, Canal.EMAIL), (Statut.ECHEC_PERMANENT, Canal.WHATSAPP)):
            NotificationLog.objects.create(
                attribution=loan,
                type_notification=TypeNotification.CREATION,
                canal=canal,
                statut=statut,
                date_scheduled=now - timedelta(hours=i % 48),
            )
        MaterielFactory()
    AttributionFactory(date_debut=now - timedelta(hours=3), date_retour_effective=now - timedelta(hours=1))


def queries(http, url: str) -> int:
    forget_scheduler_status()  # count the dashboard's status queries every time
    with CaptureQueriesContext(connection) as captured:
        response = http.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code == 200, url
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/loans/",
        "/loans/?state=overdue&sort=client",
        "/loans/?state=all&q=Client",
        "/loans/?state=returned",
        "/materials/",
        "/clients/",
        "/notifications/",
        "/notifications/?statut=ECHEC_PERMANENT&client=Client",
        "/notifications/export.csv",
        "/notifications/delivery/",
        "/scheduler/",
        "/loans/?window=due_today",
        "/loans/?state=returned&window=returned_today",
        "/loans/export.csv?state=all",
        "/loans/overdue.csv",
        "/notifications/?tab=planned",
        "/notifications/?tab=failed&client=Client",
        "/notifications/?tab=all",
    ],
)
def test_list_page_queries_do_not_grow_with_rows(staff_client, url):
    add_rows(3)
    few = queries(staff_client, url)
    add_rows(27)
    assert queries(staff_client, url) == few


def test_client_page_and_loan_page_queries_do_not_grow(staff_client, staff_user):
    client = ClientFactory()
    add_rows(2, client=client)
    loan = client.attributions.first()
    few = (
        queries(staff_client, reverse("client_detail", args=[client.pk])),
        queries(staff_client, f"/loans/{loan.pk}/"),
    )
    add_rows(20, client=client)
    for i in range(5):
        NotificationLog.objects.create(
            attribution=loan, type_notification=TypeNotification.RETARD, canal=Canal.EMAIL,
            niveau_escalade=i + 1, date_scheduled=timezone.now(),
        )  # fmt: skip
        services.add_note(loan, text=f"note {i}", now=timezone.now(), by=staff_user)
        LoanEvent.objects.create(
            attribution=loan, kind="EXTENDED", at=timezone.now(), by=staff_user,
            old_due=loan.date_retour_prevue, new_due=loan.date_retour_prevue + timedelta(hours=i + 1),
        )  # fmt: skip
    many = (
        queries(staff_client, reverse("client_detail", args=[client.pk])),
        queries(staff_client, f"/loans/{loan.pk}/"),
    )
    assert many == few


def test_the_notification_page_costs_the_same_whatever_its_loan_holds(staff_client):
    client = ClientFactory()
    add_rows(1, client=client)
    row = NotificationLog.objects.filter(attribution__client=client).first()
    few = queries(staff_client, f"/notifications/{row.pk}/")
    add_rows(10, client=client)
    for i in range(5):
        NotificationLog.objects.create(
            attribution=row.attribution, type_notification=TypeNotification.RETARD, canal=Canal.EMAIL,
            niveau_escalade=i + 1, date_scheduled=timezone.now(), fallback_of=row,
        )  # fmt: skip
    assert queries(staff_client, f"/notifications/{row.pk}/") == few
