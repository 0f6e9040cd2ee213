"""The learned send time: bounds that keep the timing promise, the fallback to the rule, the reason on the loan page."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assets import services
from assets.models import Attribution
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications import send_time, timeline
from notifications.models import NotificationLog, SendTimeChoice, TypeNotification
from notifications.planner import reminders_of
from notifications.send_time import Counts, History

from .history import past_loans

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def learning(settings):
    settings.LANGUAGE_CODE = "en"
    settings.WHATSAPP_ENABLED = False
    settings.SEND_TIME_LEARNING = True
    settings.SEND_TIME_MIN_REMINDERS = 30
    settings.SEND_TIME_MIN_BORROWER_REMINDERS = 5
    settings.SEND_TIME_EXPLORATION = 0.0
    settings.SEND_TIME_WINDOW = "08:00-20:00"
    settings.SEND_TIME_LEAD_MINUTES = (60, 240)
    settings.QUIET_HOURS = {"WHATSAPP": "21:00-08:00", "SMS": "21:00-08:00", "EMAIL": ""}


def local(moment: datetime) -> datetime:
    return moment.astimezone(PARIS)


@pytest.fixture
def lend(django_capture_on_commit_callbacks, mailoutbox):
    """Lend as the desk does: the loan's timeline is planned when the lend commits."""

    def lend(*, due: datetime, client=None, start: datetime | None = None) -> Attribution:
        with django_capture_on_commit_callbacks(execute=True):
            return services.lend(
                materiel=MaterielFactory(),  # type: ignore[arg-type]  # factory-boy: calling a factory returns the model instance
                client=client or ClientFactory(phone=""),  # type: ignore[arg-type]  # factory-boy: calling a factory returns the model instance
                due=due,
                start=start,
                now=NOW,
                by=StaffFactory(),  # type: ignore[arg-type]  # factory-boy: calling a factory returns the model instance
            )

    return lend


@pytest.fixture
def lend_long(lend):
    def lend_long(client=None) -> Attribution:
        return lend(due=datetime(2026, 3, 15, 17, 0, tzinfo=PARIS), client=client)

    return lend_long


def planned(loan: Attribution, type_notification: str) -> datetime:
    return local(NotificationLog.objects.get(attribution=loan, type_notification=type_notification).date_scheduled)


def history_at(hour: int, count: int, on_time: int, *, client=None, day_back: int = 20, minute: int = 10) -> None:
    sent_at = datetime.combine(NOW.date() - timedelta(days=day_back), time(hour, minute), tzinfo=PARIS)
    past_loans(count, sent_at=sent_at, on_time=on_time, client=client)


def test_with_little_data_a_reminder_keeps_the_rule_and_says_why(client, staff_user, lend_long):
    history_at(12, 20, 20)  # 20 reminders: fewer than the 30 needed

    loan = lend_long()

    assert [planned(loan, t).time() for t in timeline.REMINDERS_OF_CLASS["LONG"]] == [time(8, 0)] * 3
    choice = SendTimeChoice.objects.get(attribution=loan, type_notification=TypeNotification.RAPPEL_J_MOINS_1)
    assert (choice.source, choice.why, choice.evidence) == ("RULE", "THIN_DATA", 20)
    client.force_login(staff_user)
    page = client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert "rule: 08:00, not enough data (20 reminders with a known outcome, 30 needed)" in page


def test_a_long_loan_reminder_moves_to_the_hour_that_brings_loans_back_on_its_day(client, staff_user, lend_long):
    history_at(8, 40, 16)
    history_at(12, 40, 36)

    loan = lend_long()

    for type_notification, day in (("RAPPEL_J_MOINS_2", 13), ("RAPPEL_J_MOINS_1", 14), ("RAPPEL_FINAL", 15)):
        assert planned(loan, type_notification) == datetime(2026, 3, day, 12, 30, tzinfo=PARIS)
    choice = SendTimeChoice.objects.get(attribution=loan, type_notification="RAPPEL_J_MOINS_1")
    assert (choice.source, choice.why, choice.scope, choice.evidence) == ("LEARNED", "LEARNED", "EVERYONE", 80)
    assert choice.rule_at == datetime(2026, 3, 14, 8, 0, tzinfo=PARIS)
    client.force_login(staff_user)
    page = client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert (
        "learned: 12:30, from 80 reminders of all borrowers (85 % expected on time, 45 % at the rule&#x27;s 08:00)"
        in page
    )


def test_a_borrower_with_enough_history_gets_their_own_hour(lend_long):
    history_at(8, 40, 16)
    history_at(12, 40, 36)
    history_at(15, 40, 10)
    regular = ClientFactory(phone="")
    history_at(15, 8, 8, client=regular)  # bad for everyone at 15:00, good for this borrower
    history_at(12, 4, 0, client=regular)

    loan = lend_long(client=regular)

    assert planned(loan, "RAPPEL_J_MOINS_1") == datetime(2026, 3, 14, 15, 30, tzinfo=PARIS)
    assert planned(lend_long(), "RAPPEL_J_MOINS_1") == datetime(2026, 3, 14, 12, 30, tzinfo=PARIS)
    choice = SendTimeChoice.objects.get(attribution=loan, type_notification="RAPPEL_J_MOINS_1")
    assert (choice.scope, choice.evidence) == ("BORROWER", 12)


def test_a_pre_due_reminder_never_goes_after_the_due_time_nor_too_close_to_it(lend):
    history_at(8, 40, 10)
    history_at(10, 40, 40)  # the best band, but too close to a 10:45 due time
    history_at(9, 40, 30)

    loan = lend(
        due=NOW.replace(hour=10, minute=45) + timedelta(days=1), start=NOW + timedelta(days=1) - timedelta(hours=3)
    )

    when = planned(loan, "RAPPEL_2H")
    assert when == datetime(2026, 3, 11, 9, 30, tzinfo=PARIS)
    assert when <= loan.date_retour_prevue - timedelta(minutes=60)


def test_learning_off_keeps_every_rule_and_records_nothing(settings, lend_long):
    settings.SEND_TIME_LEARNING = False
    history_at(8, 40, 16)
    history_at(12, 40, 36)

    loan = lend_long()

    assert planned(loan, "RAPPEL_J_MOINS_1") == datetime(2026, 3, 14, 8, 0, tzinfo=PARIS)
    assert not SendTimeChoice.objects.exists()


def test_an_extension_decides_again_for_the_new_due_date(lend_long, django_capture_on_commit_callbacks):
    history_at(8, 40, 16)
    history_at(12, 40, 36)
    loan = lend_long()

    with django_capture_on_commit_callbacks(execute=True):
        services.extend(loan, new_due=datetime(2026, 3, 18, 17, 0, tzinfo=PARIS), now=NOW + timedelta(hours=1))

    assert planned(loan, "RAPPEL_J_MOINS_1") == datetime(2026, 3, 17, 12, 30, tzinfo=PARIS)
    assert SendTimeChoice.objects.get(attribution=loan, type_notification="RAPPEL_J_MOINS_1").rule_at == datetime(
        2026, 3, 17, 8, 0, tzinfo=PARIS
    )


def test_a_stored_choice_is_reused_when_the_reminder_is_planned_again(lend_long):
    history_at(8, 40, 16)
    history_at(12, 40, 36)
    loan = lend_long()
    history_at(16, 200, 200)  # the history changes after lending

    items = send_time.adjust(reminders_of(loan), now=NOW + timedelta(hours=2))

    assert [local(item.date_scheduled).time() for item in items] == [time(12, 30)] * 3


def test_the_learner_costs_the_same_queries_for_three_or_thirty_loans():
    history_at(8, 40, 16)
    history_at(12, 40, 36)
    counts = []
    for size in (3, 30):
        loans = [
            Attribution.objects.create(
                materiel=MaterielFactory(),
                client=ClientFactory(),
                date_debut=NOW,
                date_retour_prevue=NOW + timedelta(days=5),
            )
            for _ in range(size)
        ]
        items = [item for loan in loans for item in reminders_of(loan)]
        with CaptureQueriesContext(connection) as queries:
            send_time.adjust(items, now=NOW)
        # SQLite splits a large INSERT in chunks of 999 parameters: compare the other statements.
        counts.append(len([q for q in queries if not q["sql"].startswith("INSERT")]))
        assert SendTimeChoice.objects.filter(attribution__in=loans).count() == 3 * size
    assert counts[0] == counts[1] == 3  # the stored choices, the history (two); then the upsert


def random_history(rng: random.Random) -> History:
    overall = {
        band: Counts(n, rng.randint(0, n), rng.randint(0, n)) for band in range(24) for n in [rng.randint(0, 30)]
    }
    mine = {band: Counts(n, rng.randint(0, n), 0) for band in range(24) for n in [rng.choice([0, 0, 1, 3])]}
    return History(overall, {1: mine})


@pytest.mark.parametrize("exploration", [0.0, 0.5])
def test_whatever_the_history_a_chosen_time_keeps_the_bounds(settings, exploration):
    """GIVEN 3000 random loans (short, medium, long; due at any hour) and random histories
    THEN every chosen time is the rule's, or: not before the start or now, at least an hour before due,
    inside 08:00–20:00 and outside quiet hours, and a long-loan reminder on the rule's day."""
    settings.SEND_TIME_EXPLORATION = exploration
    settings.SEND_TIME_MIN_REMINDERS = 0
    rng = random.Random(8)
    moved = 0
    for index in range(3000):
        now = NOW + timedelta(minutes=rng.randint(0, 60 * 24 * 3))
        start = now + timedelta(minutes=rng.choice([0, 0, rng.randint(0, 600)]))
        due = start + timedelta(
            minutes=rng.choice([rng.randint(130, 239), rng.randint(240, 1440), rng.randint(1500, 9000)])
        )
        loan = Attribution(pk=index + 1, client_id=1, date_debut=start, date_retour_prevue=due)
        loan.duree = (
            "LONG" if due - start > timedelta(hours=24) else "MOYEN" if due - start >= timedelta(hours=4) else "COURT"
        )
        history = random_history(rng)
        for type_notification, rule_at in timeline.reminder_times(start, due, loan.duree):
            choice = send_time.choose(type_notification, rule_at, loan, history, not_before=max(now, start))
            chosen = local(choice.chosen_at)
            if choice.chosen_at == rule_at:
                assert choice.source == "RULE" or choice.why == "EXPLORING"
                continue
            moved += 1
            assert chosen >= max(now, start), (index, type_notification)
            assert chosen <= due - timedelta(minutes=60), (index, type_notification)
            assert time(8, 0) <= chosen.time() < time(20, 0)
            assert not any(timeline.quiet_period(chosen, canal) for canal in ("WHATSAPP", "SMS", "EMAIL"))
            if type_notification != "RAPPEL_2H":
                assert chosen.date() == local(rule_at).date()
            else:
                assert chosen >= due - timedelta(minutes=240)
    assert moved > 500  # the bounds were tested on real moves, not only on rule times


def test_bad_learner_settings_are_start_up_errors_not_failed_lends(settings):
    assert send_time.check_send_time_settings() == []
    settings.SEND_TIME_WINDOW = "20:00-08:00"
    settings.SEND_TIME_LEAD_MINUTES = (240, 60)
    settings.SEND_TIME_EXPLORATION = 2

    assert [error.id for error in send_time.check_send_time_settings()] == [
        "notifications.E801",
        "notifications.E802",
        "notifications.E803",
    ]
