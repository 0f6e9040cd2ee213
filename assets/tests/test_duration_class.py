from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from assets.models import Duree, classify_duree
from assets.tests.factories import AttributionFactory

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 6, 10, 14, 0, tzinfo=PARIS)


@pytest.mark.parametrize(
    "planned, expected",
    [
        (timedelta(hours=3, minutes=59), Duree.COURT),
        (timedelta(hours=4), Duree.MOYEN),
        (timedelta(hours=24), Duree.MOYEN),
        (timedelta(hours=24, minutes=1), Duree.LONG),
    ],
)
def test_boundaries(planned, expected):
    assert classify_duree(START, START + planned) == expected


def test_spring_forward_counts_real_hours():
    """GIVEN 00:30 → 04:30 wall clock on 29 March 2026 (clocks jump 02:00 → 03:00 in Paris)
    THEN the borrower has the material 3 real hours: a short loan."""
    start = datetime(2026, 3, 29, 0, 30, tzinfo=PARIS)
    due = datetime(2026, 3, 29, 4, 30, tzinfo=PARIS)
    assert classify_duree(start, due) == Duree.COURT


def test_fall_back_counts_real_hours():
    """GIVEN 20:00 → 20:00 the next day across 25 October 2026 (clocks go back 03:00 → 02:00)
    THEN that is 25 real hours: a long loan, although the wall clock says one day."""
    start = datetime(2026, 10, 24, 20, 0, tzinfo=PARIS)
    due = datetime(2026, 10, 25, 20, 0, tzinfo=PARIS)
    assert classify_duree(start, due) == Duree.LONG


@pytest.mark.django_db
def test_class_is_kept_in_sync_when_due_changes():
    loan = AttributionFactory(date_debut=START, date_retour_prevue=START + timedelta(hours=2))
    assert loan.duree == Duree.COURT
    loan.date_retour_prevue = START + timedelta(days=3)
    loan.save(update_fields=["date_retour_prevue"])
    loan.refresh_from_db()
    assert loan.duree == Duree.LONG


@pytest.mark.django_db
def test_overdue_and_time_remaining():
    loan = AttributionFactory(date_debut=START, date_retour_prevue=START + timedelta(hours=3))
    assert not loan.is_overdue(START + timedelta(hours=3))
    assert loan.is_overdue(START + timedelta(hours=3, seconds=1))
    assert loan.time_remaining(START + timedelta(hours=1)) == timedelta(hours=2)
    assert loan.time_remaining(START + timedelta(hours=4)) == -timedelta(hours=1)
