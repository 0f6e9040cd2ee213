"""The spec's two timelines, run with the clock moving tick by tick and beat's tasks run eagerly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications.models import NotificationLog, Statut, TypeNotification

from .beat import Beat, paris

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat_at(request):
    beats = []

    def start(moment):
        beats.append(Beat(moment))
        return beats[-1]

    yield start
    for beat in beats:
        beat.stop()


def test_a_three_hour_loan_at_14h(beat_at, mailoutbox, settings):
    """GIVEN a 3-hour loan lent at 14:00 to a borrower reachable by email
    WHEN beat runs until the material comes back at 18:00, and for a day after
    THEN CREATION goes at once, RAPPEL_2H at 15:00, RETARD at 17:15, RESTITUTION at 18:00, nothing else."""
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    start = paris(2026, 3, 10, 14, 0)
    beat = beat_at(start)
    client = ClientFactory(phone="", email="borrower@example.org", name="Client 0")
    loan = beat.act(
        services.lend,
        materiel=MaterielFactory(),
        client=client,
        due=start + timedelta(hours=3),
        now=start,
        by=StaffFactory(),
    )
    beat.run_until(paris(2026, 3, 10, 18, 0))
    beat.act(services.record_return, loan, now=beat.now)
    beat.run_until(paris(2026, 3, 11, 18, 0))

    assert [(s.type_notification, s.audience, s.niveau_escalade) for s in beat.sent] == [
        (TypeNotification.CREATION, "CLIENT", 0),
        (TypeNotification.RAPPEL_2H, "CLIENT", 0),
        (TypeNotification.RETARD, "CLIENT", 1),
        (TypeNotification.RESTITUTION, "CLIENT", 0),
    ]
    when = {s.type_notification: s.date_envoi for s in beat.sent}
    assert when[TypeNotification.CREATION] == start
    assert paris(2026, 3, 10, 15, 0) <= when[TypeNotification.RAPPEL_2H] <= paris(2026, 3, 10, 15, 2)
    assert paris(2026, 3, 10, 17, 15) <= when[TypeNotification.RETARD] <= paris(2026, 3, 10, 17, 17)
    assert when[TypeNotification.RESTITUTION] == paris(2026, 3, 10, 18, 0)
    assert [m.to for m in mailoutbox] == [["Client 0 <borrower@example.org>"]] * 4
    assert not NotificationLog.objects.filter(statut__in=[Statut.EN_ATTENTE, Statut.ECHEC]).exists()


def test_a_five_day_loan_due_day_four_at_18h(beat_at, mailoutbox, settings):
    """GIVEN a loan lent on day 0 at 10:00, due on day 4 at 18:00, to a borrower reachable by email
    WHEN beat runs until the material comes back on day 5 at 11:00, and two days more
    THEN J-2, J-1 and FINAL go at 08:00 on days 2, 3 and 4, RETARD at 18:15 on day 4, RESTITUTION
    at 11:00 on day 5, and nothing after it (the second overdue level would have been day 5 at 18:15)."""
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    start = paris(2026, 3, 2, 10, 0)
    beat = beat_at(start)
    loan = beat.act(
        services.lend,
        materiel=MaterielFactory(),
        client=ClientFactory(phone="", email="borrower@example.org"),
        due=paris(2026, 3, 6, 18, 0),
        now=start,
        by=StaffFactory(),
    )
    beat.run_until(paris(2026, 3, 7, 11, 0))
    beat.act(services.record_return, loan, now=beat.now)
    beat.run_until(paris(2026, 3, 9, 11, 0))

    assert [(s.type_notification, s.niveau_escalade) for s in beat.sent] == [
        (TypeNotification.CREATION, 0),
        (TypeNotification.RAPPEL_J_MOINS_2, 0),
        (TypeNotification.RAPPEL_J_MOINS_1, 0),
        (TypeNotification.RAPPEL_FINAL, 0),
        (TypeNotification.RETARD, 1),
        (TypeNotification.RESTITUTION, 0),
    ]
    when = {s.type_notification: s.date_envoi for s in beat.sent}
    for type_, day in (("RAPPEL_J_MOINS_2", 4), ("RAPPEL_J_MOINS_1", 5), ("RAPPEL_FINAL", 6)):
        assert paris(2026, 3, day, 8, 0) <= when[type_] <= paris(2026, 3, day, 8, 2), type_
    assert paris(2026, 3, 6, 18, 15) <= when["RETARD"] <= paris(2026, 3, 6, 18, 17)
    assert when["RESTITUTION"] == paris(2026, 3, 7, 11, 0)
    assert len(mailoutbox) == 6


def test_the_overdue_ladder_tells_staff_and_manager_from_level_two(beat_at, mailoutbox, settings):
    """GIVEN a 3-hour loan never returned, lent by a staff member with an email, and a manager address
    WHEN beat runs for three days
    THEN RETARD level 1 goes to the borrower at due + 15 min; levels 2 and 3, a day apart, also go
    to the lender and the manager; there is no level 4."""
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    start = paris(2026, 3, 10, 9, 0)
    beat = beat_at(start)
    lender = StaffFactory(email="lender@example.org")
    beat.act(
        services.lend,
        materiel=MaterielFactory(),
        client=ClientFactory(phone="", email="borrower@example.org"),
        due=start + timedelta(hours=3),
        now=start,
        by=lender,
    )
    beat.run_until(paris(2026, 3, 14, 9, 0))
    retard = sorted((s.niveau_escalade, s.audience, s.date_envoi) for s in beat.sent if s.type_notification == "RETARD")
    assert [(level, audience) for level, audience, _ in retard] == [
        (1, "CLIENT"),
        (2, "CLIENT"),
        (2, "MANAGER"),
        (2, "STAFF"),
        (3, "CLIENT"),
        (3, "MANAGER"),
        (3, "STAFF"),
    ]
    for level, _, when in retard:
        ideal = paris(2026, 3, 10 + level - 1, 12, 15)
        assert ideal <= when <= ideal + timedelta(minutes=2)
    staff = sorted(m.to[0] for m in mailoutbox if "borrower" not in m.to[0])
    assert len(staff) == 4
    assert sum("lender@example.org" in to for to in staff) == 2
    assert sum("manager@example.org" in to for to in staff) == 2
