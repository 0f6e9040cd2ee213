"""Each check and the relay cost the same number of queries for 10 loans as for 1,000.

On SQLite, Django cuts one bulk INSERT into statements of at most 999 parameters
(its conservative reading of SQLITE_MAX_VARIABLE_NUMBER); those extra statements
are the driver's chunking, not a query per loan, so there only the INSERTs may grow.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assets.models import Attribution, Client, Materiel, classify_duree
from assets.tests.factories import StaffFactory
from notifications import planner, relay
from notifications.models import NotificationLog

from .beat import paris

pytestmark = pytest.mark.django_db

NOW = paris(2026, 3, 10, 9, 0)


def make_loans(count: int, *, start, due) -> None:
    """``count`` open loans written in bulk (no signals: nothing is planned yet)."""
    lender: User = StaffFactory()  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    offset = Materiel.objects.count()
    materiels = Materiel.objects.bulk_create(
        [Materiel(code=f"Q-{offset + i:05d}", name="Caméra", state=Materiel.State.LENT) for i in range(count)]
    )
    clients = Client.objects.bulk_create(
        [Client(name=f"Borrower {i}", email=f"b{i}@example.org") for i in range(count)]
    )
    loans = [
        Attribution(materiel=m, client=c, created_by=lender, date_debut=start, date_retour_prevue=due)
        for m, c in zip(materiels, clients, strict=False)
    ]
    # bulk_create does not call save(): set what save() would.
    for loan in loans:
        loan.duree = classify_duree(start, due)
        loan.statut = Attribution.Statut.EN_COURS
    Attribution.objects.bulk_create(loans)


def queries_of(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return counted(captured.captured_queries)


def counted(queries) -> int:
    if connection.vendor == "sqlite":
        return sum(1 for query in queries if not query["sql"].startswith("INSERT"))
    return len(queries)


@pytest.fixture
def assert_same_queries(django_assert_max_num_queries):
    """Like ``django_assert_max_num_queries`` (used as is on PostgreSQL), minus SQLite's INSERT chunks."""
    import contextlib

    @contextlib.contextmanager
    def within(limit: int):
        if connection.vendor != "sqlite":
            with django_assert_max_num_queries(limit):
                yield
            return
        with CaptureQueriesContext(connection) as captured:
            yield
        assert counted(captured.captured_queries) <= limit, [q["sql"][:120] for q in captured.captured_queries]

    return within


CASES = {
    # check, loans that give it work at NOW
    "court": (planner.check_court_terme_reminders, NOW - timedelta(hours=1), NOW + timedelta(hours=2, minutes=20)),
    "moyen": (planner.check_moyen_terme_reminders, NOW - timedelta(hours=3), NOW + timedelta(hours=4)),
    "long": (planner.check_long_terme_reminders, NOW - timedelta(days=5), NOW + timedelta(days=1, hours=2)),
    "overdue": (planner.check_overdue_materials, NOW - timedelta(hours=5), NOW - timedelta(hours=1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_check_costs_the_same_queries_for_10_and_1000_loans(name, assert_same_queries, time_machine):
    check, start, due = CASES[name]
    time_machine.move_to(NOW, tick=False)
    make_loans(10, start=start, due=due)
    small = queries_of(lambda: check(now=timezone.now()))
    planned_small = NotificationLog.objects.count()
    assert planned_small >= 10, "the check must have had work to do"
    NotificationLog.objects.all().delete()
    make_loans(990, start=start, due=due)
    with assert_same_queries(small):
        check(now=timezone.now())
    assert NotificationLog.objects.count() == planned_small * 100


def test_the_relay_costs_the_same_queries_for_10_and_1000_due_rows(assert_same_queries, time_machine, settings):
    settings.RELAY_BATCH_SIZE = 5000
    time_machine.move_to(NOW, tick=False)
    make_loans(10, start=NOW - timedelta(hours=1), due=NOW + timedelta(hours=1))

    def plan_rows():
        NotificationLog.objects.bulk_create(
            NotificationLog(attribution=a, type_notification="CREATION", canal="EMAIL", date_scheduled=NOW)
            for a in Attribution.objects.filter(notifications__isnull=True)
        )

    plan_rows()
    small = queries_of(lambda: relay.dispatch_due_notifications(now=timezone.now()))
    make_loans(990, start=NOW - timedelta(hours=1), due=NOW + timedelta(hours=1))
    plan_rows()
    with assert_same_queries(small):
        report = relay.dispatch_due_notifications(now=timezone.now())
    assert report.enqueued == 990


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_cold_start_plans_its_loans_a_chunk_at_a_time(name, monkeypatch, time_machine):
    """No statement of a check grows with its number of loans: PostgreSQL takes at most 65,535 parameters
    a statement with server-side binding, and the overdue check of a 1,000,000-loan cold start failed there
    (bench/checks_at_scale.py --large). Loans are planned `planner.PLAN_CHUNK` at a time."""
    check, start, due = CASES[name]
    time_machine.move_to(NOW, tick=False)
    monkeypatch.setattr(planner, "PLAN_CHUNK", 50)
    make_loans(1, start=start, due=due)
    check(now=timezone.now())
    rows_per_loan = NotificationLog.objects.count()
    assert rows_per_loan >= 1, "the check must have had work to do"
    NotificationLog.objects.all().delete()
    make_loans(599, start=start, due=due)
    sizes: list[int] = []

    def measure(execute, sql, params, many, context):
        if not (connection.vendor == "sqlite" and sql.startswith("INSERT")):  # Django's own 999-parameter chunks
            sizes.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(measure):
        check(now=timezone.now())
    assert NotificationLog.objects.count() == rows_per_loan * 600, "every loan planned, across the chunks"
    assert max(sizes) <= 50 * (rows_per_loan + 1) + 20 < 600
