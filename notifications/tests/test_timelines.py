"""The spec's two timelines, run with the clock moving minute by minute and beat's tasks run eagerly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications.models import NotificationLog, Statut, TypeNotification

from .beat import Beat, Recorder, paris

pytestmark = pytest.mark.django_db(transaction=True)


def enqueued_types(recorder: Recorder) -> list[tuple[str, str, int, object]]:
    """(type, audience, level, first enqueue time) in time order."""
    first = recorder.first_enqueue()
    rows = NotificationLog.objects.in_bulk(list(first))
    return sorted(
        ((rows[i].type_notification, rows[i].audience, rows[i].niveau_escalade, when) for i, when in first.items()),
        key=lambda entry: (entry[3], entry[0]),
    )


def test_a_three_hour_loan_at_14h(monkeypatch, settings):
    """GIVEN a 3-hour loan lent at 14:00 to a borrower reachable by email
    WHEN beat runs minute by minute until the material comes back at 18:00 and then for a day
    THEN CREATION goes at once, RAPPEL_2H at 15:00, RETARD at 17:15, RESTITUTION at 18:00, nothing else."""
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    recorder = Recorder().install(monkeypatch)
    start = paris(2026, 3, 10, 14, 0)
    beat = Beat(start)
    try:
        client = ClientFactory(phone="")
        loan = services.lend(
            materiel=MaterielFactory(), client=client, due=start + timedelta(hours=3), now=start, by=StaffFactory()
        )
        beat.run_until(paris(2026, 3, 10, 18, 0))
        services.record_return(loan, now=beat.now)
        beat.run_until(paris(2026, 3, 11, 18, 0))
    finally:
        beat.stop()
    assert [(t, audience, level) for t, audience, level, _ in enqueued_types(recorder)] == [
        (TypeNotification.CREATION, "CLIENT", 0),
        (TypeNotification.RAPPEL_2H, "CLIENT", 0),
        (TypeNotification.RETARD, "CLIENT", 1),
        (TypeNotification.RESTITUTION, "CLIENT", 0),
    ]
    times = {t: when for t, _, _, when in enqueued_types(recorder)}
    assert times[TypeNotification.CREATION] == start
    assert paris(2026, 3, 10, 15, 0) <= times[TypeNotification.RAPPEL_2H] <= paris(2026, 3, 10, 15, 2)
    assert paris(2026, 3, 10, 17, 15) <= times[TypeNotification.RETARD] <= paris(2026, 3, 10, 17, 17)
    assert times[TypeNotification.RESTITUTION] == paris(2026, 3, 10, 18, 0)
    # The next overdue level had been planned? It must not be waiting any more.
    assert not NotificationLog.objects.filter(statut=Statut.EN_ATTENTE, type_notification=TypeNotification.RETARD).exists()


def test_a_five_day_loan_due_day_four_at_18h(monkeypatch, settings):
    """GIVEN a loan lent on day 0 at 10:00, due on day 4 at 18:00, email only
    WHEN beat runs until the material comes back on day 5 at 11:00, and two days more
    THEN J-2, J-1 and FINAL go at 08:00 on days 2, 3 and 4, RETARD at 18:15 on day 4, RESTITUTION
    at 11:00 on day 5, and nothing after it (the second overdue level would have been 18:15 on day 5)."""
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    recorder = Recorder().install(monkeypatch)
    start = paris(2026, 3, 2, 10, 0)
    beat = Beat(start)
    try:
        loan = services.lend(
            materiel=MaterielFactory(),
            client=ClientFactory(phone=""),
            due=paris(2026, 3, 6, 18, 0),
            now=start,
            by=StaffFactory(),
        )
        beat.run_until(paris(2026, 3, 7, 11, 0))
        services.record_return(loan, now=beat.now)
        beat.run_until(paris(2026, 3, 9, 11, 0))
    finally:
        beat.stop()
    got = enqueued_types(recorder)
    assert [(t, level) for t, _, level, _ in got] == [
        (TypeNotification.CREATION, 0),
        (TypeNotification.RAPPEL_J_MOINS_2, 0),
        (TypeNotification.RAPPEL_J_MOINS_1, 0),
        (TypeNotification.RAPPEL_FINAL, 0),
        (TypeNotification.RETARD, 1),
        (TypeNotification.RESTITUTION, 0),
    ]
    when = {t: moment for t, _, _, moment in got}
    for type_, day in (("RAPPEL_J_MOINS_2", 4), ("RAPPEL_J_MOINS_1", 5), ("RAPPEL_FINAL", 6)):
        assert paris(2026, 3, day, 8, 0) <= when[type_] <= paris(2026, 3, day, 8, 2), type_
    assert paris(2026, 3, 6, 18, 15) <= when["RETARD"] <= paris(2026, 3, 6, 18, 17)
    assert when["RESTITUTION"] == paris(2026, 3, 7, 11, 0)
