"""At lend time, a warning for a borrower with overdue items now or a habit of returning late."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from assets.lend_checks import check_borrower, months_before
from assets.tests.factories import AttributionFactory, ClientFactory

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 31, 10, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def frozen(settings):
    settings.LANGUAGE_CODE = "en"
    settings.LEND_WARN_LATE_RETURNS = 2
    settings.LEND_WARN_LATE_MONTHS = 6
    with time_machine.travel(NOW, tick=False):
        yield


def returned(client, *, days_ago: int, late_hours: int) -> None:
    due = NOW - timedelta(days=days_ago)
    AttributionFactory(
        client=client,
        date_debut=due - timedelta(hours=3),
        date_retour_prevue=due,
        date_retour_effective=due + timedelta(hours=late_hours),
    )


def test_months_before_keeps_the_day_or_takes_the_last_of_a_shorter_month():
    assert months_before(NOW, 1).date().isoformat() == "2026-02-28"
    assert months_before(NOW, 6).date().isoformat() == "2025-09-30"
    assert months_before(NOW, 15).date().isoformat() == "2024-12-31"


def test_two_late_returns_in_six_months_warn():
    client = ClientFactory(name="Late Larry")
    returned(client, days_ago=10, late_hours=5)
    returned(client, days_ago=150, late_hours=1)
    returned(client, days_ago=20, late_hours=-1)  # on time
    assert check_borrower(client, NOW).warnings == ["Late Larry returned late 2 times in the last 6 months."]


def test_late_returns_older_than_the_window_or_too_few_do_not_warn():
    client = ClientFactory()
    returned(client, days_ago=10, late_hours=5)
    returned(client, days_ago=200, late_hours=5)
    assert check_borrower(client, NOW).warnings == []


def test_an_overdue_item_now_warns_on_the_lend_page(staff_client):
    client = ClientFactory(name="Olga")
    AttributionFactory(client=client, date_debut=NOW - timedelta(days=2), date_retour_prevue=NOW - timedelta(hours=1))
    assert check_borrower(client, NOW).warnings == ["Olga has 1 overdue item now."]
    html = staff_client.get(reverse("loan_lend"), {"client": client.pk}).content.decode()
    assert "Olga has 1 overdue item now." in html
