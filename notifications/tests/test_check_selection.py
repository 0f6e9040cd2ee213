"""The checks load only loans that lack a row, and still plan exactly what loading every loan would plan.

The reference below is the checks' selection before they filtered in SQL: every open
loan of the window, expanded in Python. Random loans, preferences, contacts and
half-planned timelines, at times of day in and out of quiet hours: both must plan the
same rows.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assets.models import Attribution, Client, Duree, Materiel, classify_duree
from notifications import outbox, planner, schedule, timeline
from notifications.models import NotificationLog, NotificationPreferences

from .beat import paris

pytestmark = pytest.mark.django_db

BASE = paris(2026, 3, 26, 0, 0)  # the clocks go forward on the night of 28 to 29 March
MOMENTS = [
    BASE + timedelta(hours=7, minutes=50),
    BASE + timedelta(hours=9, minutes=10),
    BASE + timedelta(hours=20, minutes=52),
    BASE + timedelta(hours=23, minutes=40),
    BASE + timedelta(days=1, hours=3, minutes=5),
    BASE + timedelta(days=2, hours=14, minutes=30),
    BASE + timedelta(days=3, hours=1, minutes=15),
]


def make_world(rng: random.Random, count: int = 160) -> None:
    """Loans of every class around BASE, with every kind of client, preferences and lender."""
    user = get_user_model()
    lenders = [
        user.objects.create(username="with-email", email="lender@example.org"),
        user.objects.create(username="no-email", email=""),
        None,
    ]
    loans = []
    for i in range(count):
        client = Client.objects.create(
            name=f"C{i}",
            email=rng.choice(["", f"c{i}@example.org", f"c{i}@example.org"]),
            phone=rng.choice(["", "+33612345678"]),
        )
        if rng.random() < 0.6:
            NotificationPreferences.objects.create(
                client=client,
                notifications_email=rng.random() < 0.7,
                notifications_whatsapp=rng.random() < 0.7,
                phone_number=rng.choice(["", "", "+33698765432"]),
                rappel_2h_avant=rng.random() < 0.8,
                rappel_j_moins_2=rng.random() < 0.8,
                rappel_j_moins_1=rng.random() < 0.8,
                rappel_final=rng.random() < 0.8,
            )
        due = BASE + timedelta(minutes=rng.randrange(-4 * 24 * 60, 7 * 24 * 60, 5))
        length = timedelta(
            minutes=rng.choice(
                [rng.randrange(20, 239), rng.randrange(241, 1440), rng.randrange(1441, 10 * 1440), 1440 + 30 * 60]
            )
        )
        materiel = Materiel.objects.create(code=f"S-{i:04d}", name="Caméra", state=Materiel.State.LENT)
        loans.append(
            Attribution(
                materiel=materiel,
                client=client,
                created_by=rng.choice(lenders),
                date_debut=due - length,
                date_retour_prevue=due,
                duree=classify_duree(due - length, due),
                statut=Attribution.Statut.EN_COURS,
            )
        )
    Attribution.objects.bulk_create(loans)


def existing_keys() -> set[tuple]:
    return set(
        NotificationLog.objects.values_list(
            "attribution_id", "type_notification", "canal", "audience", "niveau_escalade"
        )
    )


def reference_keys(check: str, now) -> set[tuple]:
    """What the checks planned when they loaded every loan of their window (minus what exists)."""
    if check == "overdue":
        horizon = schedule.planning_horizon("check_overdue_materials", now)
        from django.conf import settings

        grace = timedelta(minutes=settings.OVERDUE_GRACE_MINUTES)
        repeat = timedelta(hours=settings.OVERDUE_REPEAT_HOURS)
        span = grace + (settings.OVERDUE_MAX_LEVELS - 1) * repeat
        loans = planner.loans_for_planning().filter(
            date_retour_prevue__lte=horizon - grace, date_retour_prevue__gt=now - span - repeat
        )
        items = []
        for loan in loans:
            levels = planner.current_levels(timeline.overdue_times(loan.date_retour_prevue), now=now, until=horizon)
            items.extend(planner.overdue_alerts_of(loan, levels))
        rows = outbox.expand(items, until=horizon)
    else:
        duree = {"court": Duree.COURT, "moyen": Duree.MOYEN, "long": Duree.LONG}[check]
        horizon = schedule.planning_horizon(planner.CHECK_OF_CLASS[duree], now)
        loans = planner.loans_for_planning().filter(
            duree=duree, date_retour_prevue__gt=now, date_retour_prevue__lte=horizon + planner.REMINDER_LEAD[duree]
        )
        items = [item for loan in loans for item in planner.reminders_of(loan)]
        rows = outbox.expand(items, not_before=now, until=horizon)
    return {outbox.row_key(row) for row in rows} - existing_keys()


CHECKS = {
    "court": planner.check_court_terme_reminders,
    "moyen": planner.check_moyen_terme_reminders,
    "long": planner.check_long_terme_reminders,
    "overdue": planner.check_overdue_materials,
}


@pytest.mark.parametrize("manager", ["", "manager@example.org"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_checks_plan_the_same_rows_as_loading_every_loan(
    seed, manager, settings, django_capture_on_commit_callbacks
):
    settings.WHATSAPP_ENABLED = True
    settings.OVERDUE_MANAGER_EMAIL = manager
    rng = random.Random(seed)
    make_world(rng)
    # Half-planned timelines: what an earlier run planned, with some rows gone since.
    for check in CHECKS.values():
        check(now=BASE - timedelta(hours=20))
    doomed = [pk for pk in NotificationLog.objects.values_list("pk", flat=True) if rng.random() < 0.4]
    NotificationLog.objects.filter(pk__in=doomed).delete()

    planned = 0
    for now in MOMENTS:
        for name, check in CHECKS.items():
            expected = reference_keys(name, now)
            before = existing_keys()
            check(now=now)
            assert existing_keys() - before == expected, (name, now)
            planned += len(expected)
    assert planned > 100, "the moments must give the checks work"


def test_a_client_who_turns_whatsapp_on_gets_the_whatsapp_reminder_at_the_next_check(settings):
    settings.WHATSAPP_ENABLED = True
    now = paris(2026, 3, 10, 10, 0)
    client = Client.objects.create(name="Ana", email="ana@example.org", phone="+33612345678")
    prefs = NotificationPreferences.objects.create(client=client, notifications_whatsapp=False)
    materiel = Materiel.objects.create(code="W-1", name="Caméra", state=Materiel.State.LENT)
    loan = Attribution.objects.create(
        materiel=materiel,
        client=client,
        date_debut=now - timedelta(hours=1),
        date_retour_prevue=now + timedelta(hours=2, minutes=20),
    )
    planner.check_court_terme_reminders(now=now)
    assert list(loan.notifications.values_list("canal", flat=True)) == ["EMAIL"]

    prefs.notifications_whatsapp = True
    prefs.save()
    planner.check_court_terme_reminders(now=now + timedelta(minutes=1))

    assert sorted(loan.notifications.values_list("canal", flat=True)) == ["EMAIL", "WHATSAPP"]


def test_a_run_with_everything_planned_loads_no_loan(time_machine):
    from .test_check_queries import CASES, NOW, make_loans

    time_machine.move_to(NOW, tick=False)
    for name, (check, start, due) in CASES.items():
        make_loans(200, start=start, due=due)
        check(now=NOW)
        with CaptureQueriesContext(connection) as captured:
            check(now=NOW)
        # The beat entry, then the loans lacking a row: none, so nothing else.
        assert len(captured.captured_queries) == 2, (name, [q["sql"][:100] for q in captured.captured_queries])
