"""Extending a loan cancels what was pending for the old due date and re-arms the new timeline."""

from __future__ import annotations

import pytest

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, Statut

from .beat import Beat, paris

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat():
    beats = []

    def start(moment):
        beats.append(Beat(moment))
        return beats[-1]

    yield start
    for started in beats:
        started.stop()


def lend(beat, start, due):
    return beat.act(services.lend, materiel=MaterielFactory(), client=ClientFactory(phone=""), due=due, now=start)


def sent(beat, type_):
    return [s.date_envoi for s in beat.sent if s.type_notification == type_]


def test_a_medium_loan_extended_into_a_long_one_swaps_its_reminders(beat):
    start = paris(2026, 3, 10, 10, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 10, 18, 0))
    clock.run_until(paris(2026, 3, 10, 12, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 12, 18, 0), now=clock.now)

    rappel = NotificationLog.objects.get(attribution=loan, type_notification="RAPPEL_2H")
    assert rappel.statut == Statut.ANNULEE and "due date moved" in rappel.reason_text
    clock.run_until(paris(2026, 3, 12, 17, 0))
    assert sent(clock, "RAPPEL_2H") == []
    assert sent(clock, "RAPPEL_J_MOINS_2") == []  # 08:00 on the 10th: before the extension
    assert sent(clock, "RAPPEL_J_MOINS_1") == [paris(2026, 3, 11, 8, 0)]
    assert sent(clock, "RAPPEL_FINAL") == [paris(2026, 3, 12, 8, 0)]


def test_a_reminder_already_sent_is_sent_again_for_the_new_due_date(beat):
    start = paris(2026, 3, 10, 14, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 10, 17, 0))
    clock.run_until(paris(2026, 3, 10, 15, 30))
    assert sent(clock, "RAPPEL_2H") == [paris(2026, 3, 10, 15, 0)]
    clock.act(services.extend, loan, new_due=paris(2026, 3, 10, 19, 0), now=clock.now)
    clock.run_until(paris(2026, 3, 10, 18, 59))
    assert sent(clock, "RAPPEL_2H") == [paris(2026, 3, 10, 15, 0), paris(2026, 3, 10, 17, 0)]
    assert sent(clock, "RETARD") == []
    # One row, now describing the reminder of the new due date.
    row = NotificationLog.objects.get(attribution=loan, type_notification="RAPPEL_2H")
    assert row.date_scheduled == paris(2026, 3, 10, 17, 0) and row.date_envoi == paris(2026, 3, 10, 17, 0)


def test_a_late_loan_extended_is_alerted_again_only_if_late_again(beat):
    start = paris(2026, 3, 10, 14, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 10, 17, 0))
    clock.run_until(paris(2026, 3, 10, 18, 0))
    assert sent(clock, "RETARD") == [paris(2026, 3, 10, 17, 15)]
    clock.act(services.extend, loan, new_due=paris(2026, 3, 10, 20, 0), now=clock.now)
    # The new due date's 2-hour reminder is due right now (18:00): it goes at once.
    assert sent(clock, "RAPPEL_2H")[-1] == paris(2026, 3, 10, 18, 0)
    clock.run_until(paris(2026, 3, 10, 21, 0))
    assert sent(clock, "RETARD") == [paris(2026, 3, 10, 17, 15), paris(2026, 3, 10, 20, 15)]
