"""Two copies of the same check at once (two beats, or a retried task) plan each notification once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections

from assets.models import Attribution
from assets.tests.factories import AttributionFactory, ClientFactory, StaffFactory
from notifications import planner
from notifications.models import NotificationLog

from .beat import paris

NOW = paris(2026, 3, 10, 9, 0)
LOANS = 100


def run_twice_at_once(check) -> list[BaseException]:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def copy():
        try:
            barrier.wait()
            check(now=NOW)
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "check, start, due, rows_per_loan",
    [
        (planner.check_court_terme_reminders, NOW - timedelta(hours=1), NOW + timedelta(hours=2, minutes=10), 1),
        (planner.check_long_terme_reminders, NOW - timedelta(days=3), NOW + timedelta(days=1, hours=2), 1),
        # Level 2 of a loan late for a day: borrower, lender and manager.
        (planner.check_overdue_materials, NOW - timedelta(days=3), NOW - timedelta(days=1, minutes=20), 3),
    ],
)
def test_two_copies_of_a_check_at_once_plan_each_notification_once(check, start, due, rows_per_loan, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; CI runs this file again on PostgreSQL")
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    lender = StaffFactory()
    for _ in range(LOANS):
        AttributionFactory(client=ClientFactory(phone=""), created_by=lender, date_debut=start, date_retour_prevue=due)

    errors = run_twice_at_once(check)

    assert errors == []
    assert NotificationLog.objects.count() == LOANS * rows_per_loan
    per_key = NotificationLog.objects.values_list(
        "attribution_id", "type_notification", "canal", "audience", "niveau_escalade"
    )
    assert len(set(per_key)) == len(per_key)
    assert Attribution.objects.count() == LOANS
