"""The front-desk pages cost the same number of queries whatever the number of rows (no query per row)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.desk_views import BASKET_SESSION_KEY
from assets.models import Attribution, Materiel
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from assets.tests.test_list_queries import queries
from notifications.models import NotificationPreferences

pytestmark = pytest.mark.django_db


def returned_today(n: int) -> int:
    now = timezone.now()
    for i in range(n):
        AttributionFactory(
            date_debut=now - timedelta(minutes=30 + i),
            date_retour_prevue=now - timedelta(minutes=10) if i % 2 else now + timedelta(hours=1),
            date_retour_effective=now - timedelta(minutes=i % 20),
        )
    return Attribution.objects.latest("id").pk


def test_the_scan_return_page_does_not_grow_with_returns(staff_client):
    last = returned_today(3)
    few = queries(staff_client, f"{reverse('scan_return')}?last={last}")
    last = returned_today(20)
    assert queries(staff_client, f"{reverse('scan_return')}?last={last}") == few


def fill_basket(http, n: int) -> None:
    session = http.session
    ids = session.get(BASKET_SESSION_KEY, [])
    for i in range(n):
        materiel: Materiel = MaterielFactory()  # type: ignore[assignment]  # factory-boy returns the model instance
        if i % 3 == 0:
            AttributionFactory(materiel=materiel)  # shows who has it
        ids.append(materiel.pk)
    session[BASKET_SESSION_KEY] = ids
    session.save()


def test_the_basket_does_not_grow_with_its_items(staff_client):
    fill_basket(staff_client, 2)
    few = queries(staff_client, reverse("basket"))
    fill_basket(staff_client, 12)
    assert queries(staff_client, reverse("basket")) == few


def test_the_lend_page_warnings_do_not_grow_with_the_borrowers_history(staff_client):
    client = ClientFactory()
    NotificationPreferences.objects.create(client=client)
    now = timezone.now()

    def history(n: int) -> None:
        for _ in range(n):
            AttributionFactory(
                client=client, date_debut=now - timedelta(days=3), date_retour_prevue=now - timedelta(days=1)
            )
            AttributionFactory(
                client=client,
                date_debut=now - timedelta(days=9),
                date_retour_prevue=now - timedelta(days=8),
                date_retour_effective=now - timedelta(days=7),
            )

    history(1)
    few = queries(staff_client, f"{reverse('loan_lend')}?client={client.pk}")
    history(10)
    assert queries(staff_client, f"{reverse('loan_lend')}?client={client.pk}") == few


def test_the_unreachable_loan_list_does_not_grow(staff_client):
    def unreachable(n: int) -> None:
        for _ in range(n):
            AttributionFactory(client=ClientFactory(email=""))

    unreachable(2)
    few = queries(staff_client, f"{reverse('loan_list')}?reach=none")
    unreachable(15)
    assert queries(staff_client, f"{reverse('loan_list')}?reach=none") == few
