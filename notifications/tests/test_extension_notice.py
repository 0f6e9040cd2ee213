"""PROLONGATION: the borrower hears of a new due date, by the same rules as every other notification."""

from __future__ import annotations

import pytest

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, Statut, TypeNotification

from .beat import Beat, paris

pytestmark = pytest.mark.django_db(transaction=True)
NOTICE = TypeNotification.PROLONGATION


@pytest.fixture
def beat():
    beats = []

    def start(moment):
        beats.append(Beat(moment))
        return beats[-1]

    yield start
    for started in beats:
        started.stop()


def lend(clock, start, due, **client):
    client = ClientFactory(phone="", email="camille@example.org", language="fr", **client)
    materiel = MaterielFactory(name="Batterie lithium", code="BAT-007")
    return clock.act(services.lend, materiel=materiel, client=client, due=due, now=start)


def notices(clock):
    return [s for s in clock.sent if s.type_notification == NOTICE]


def test_extending_a_loan_tells_the_borrower_the_new_and_the_old_date(beat, mailoutbox):
    start = paris(2026, 3, 10, 10, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 12, 18, 0))
    clock.run_until(paris(2026, 3, 11, 9, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 16, 18, 0), now=clock.now)

    [sent] = notices(clock)
    assert sent.date_envoi == paris(2026, 3, 11, 9, 0) and sent.niveau_escalade == 1
    row = NotificationLog.objects.get(pk=sent.log_id)
    assert row.previous_due == paris(2026, 3, 12, 18, 0)
    [mail] = [m for m in mailoutbox if m.subject.startswith("Nouvelle date de retour")]
    assert mail.subject == "Nouvelle date de retour : Batterie lithium"
    assert "à rendre le lundi 16 mars 2026 à 18h00, au lieu du jeudi 12 mars 2026 à 18h00" in mail.body
    # The reminders follow the new date, as for any extension.
    clock.run_until(paris(2026, 3, 16, 9, 0))
    finals = [s.date_envoi for s in clock.sent if s.type_notification == "RAPPEL_FINAL"]
    assert finals == [paris(2026, 3, 16, 8, 0)]


def test_each_extension_has_its_own_notice_and_audit_row(beat):
    start = paris(2026, 3, 10, 10, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 10, 18, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 11, 18, 0), now=clock.now)
    clock.run_until(paris(2026, 3, 10, 12, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 12, 18, 0), now=clock.now)

    assert [s.niveau_escalade for s in notices(clock)] == [1, 2]
    rows = NotificationLog.objects.filter(attribution=loan, type_notification=NOTICE).order_by("niveau_escalade")
    assert [(r.statut, r.previous_due) for r in rows] == [
        (Statut.ENVOYEE, paris(2026, 3, 10, 18, 0)),
        (Statut.ENVOYEE, paris(2026, 3, 11, 18, 0)),
    ]


def test_a_notice_waits_for_the_end_of_quiet_hours_and_a_later_one_replaces_it(beat, settings, mailoutbox):
    settings.QUIET_HOURS = {"WHATSAPP": "21:00-08:00", "SMS": "21:00-08:00", "EMAIL": "21:00-08:00"}
    start = paris(2026, 3, 10, 10, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 12, 18, 0))
    clock.run_until(paris(2026, 3, 10, 22, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 13, 18, 0), now=clock.now)
    clock.run_until(paris(2026, 3, 10, 23, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 14, 18, 0), now=clock.now)
    assert notices(clock) == []
    clock.run_until(paris(2026, 3, 11, 9, 0))

    [sent] = notices(clock)
    assert sent.date_envoi == paris(2026, 3, 11, 8, 0) and sent.niveau_escalade == 2
    first = NotificationLog.objects.get(attribution=loan, type_notification=NOTICE, niveau_escalade=1)
    assert first.statut == Statut.ANNULEE and first.reason_code == "NOTICE_REPLACED"
    # The borrower never heard of the 13th: one message, from the date they knew to the latest one.
    [mail] = [m for m in mailoutbox if m.subject.startswith("Nouvelle date de retour")]
    assert "samedi 14 mars 2026 à 18h00, au lieu du jeudi 12 mars 2026 à 18h00" in mail.body


def test_a_notice_not_sent_when_the_loan_comes_back_is_cancelled(beat, settings):
    settings.QUIET_HOURS = {"WHATSAPP": "21:00-08:00", "SMS": "21:00-08:00", "EMAIL": "21:00-08:00"}
    start = paris(2026, 3, 10, 10, 0)
    clock = beat(start)
    loan = lend(clock, start, paris(2026, 3, 12, 18, 0))
    clock.run_until(paris(2026, 3, 10, 22, 0))
    clock.act(services.extend, loan, new_due=paris(2026, 3, 13, 18, 0), now=clock.now)
    clock.run_until(paris(2026, 3, 10, 23, 0))
    clock.act(services.record_return, loan, now=clock.now)
    clock.run_until(paris(2026, 3, 11, 9, 0))

    assert notices(clock) == []
    row = NotificationLog.objects.get(attribution=loan, type_notification=NOTICE)
    assert row.statut == Statut.ANNULEE and row.reason_code == "NOTICE_AFTER_RETURN"
