"""How long each periodic check and the relay take for 1k, 10k and 100k open loans.

Prints one table: per number of open loans and task, the first run (plans the rows),
the second run (steady state: everything already planned), the queries of each and
the rows planned. Uses its own SQLite file under var/ (or BENCH_DATABASE_URL, e.g. a
scratch PostgreSQL database, which it empties), and an in-memory broker.

    .venv/bin/python bench/scheduling_checks.py [SIZES]     # default 1000,10000,100000
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = ROOT / "var" / "bench-scheduling.sqlite3"
os.environ.update(
    DJANGO_SETTINGS_MODULE="radgestmat.settings",
    DEBUG="1",
    DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{DB}"),
    CELERY_BROKER_URL="memory://localhost/",
    LOG_LEVEL="WARNING",
)


def make_loans(count: int, now) -> None:
    """``count`` open loans, due from a day ago to two weeks ahead, every class."""
    from assets.models import Attribution, Client, Materiel, classify_duree

    rng = random.Random(count)
    chunk = 5000
    for offset in range(0, count, chunk):
        size = min(chunk, count - offset)
        materiels = Materiel.objects.bulk_create(
            [Materiel(code=f"B-{offset + i:07d}", name="Caméra", state=Materiel.State.LENT) for i in range(size)]
        )
        clients = Client.objects.bulk_create(
            [Client(name=f"Borrower {offset + i}", email=f"b{offset + i}@example.org") for i in range(size)]
        )
        loans = []
        for materiel, client in zip(materiels, clients):
            due = now + timedelta(minutes=rng.randrange(-24 * 60, 14 * 24 * 60))
            start = due - timedelta(hours=rng.choice([rng.uniform(0.5, 3.9), rng.uniform(4.1, 23.9), rng.uniform(25, 240)]))
            loans.append(
                Attribution(
                    materiel=materiel,
                    client=client,
                    date_debut=start,
                    date_retour_prevue=due,
                    duree=classify_duree(start, due),
                    statut=Attribution.Statut.EN_COURS,
                )
            )
        Attribution.objects.bulk_create(loans)


def timed(function, now):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        function(now=now)
        elapsed = time.perf_counter() - started
    return elapsed, len(queries.captured_queries)


def main(sizes: list[int]) -> None:
    if "BENCH_DATABASE_URL" not in os.environ:
        DB.parent.mkdir(exist_ok=True)
        DB.unlink(missing_ok=True)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from assets.models import Attribution, Client, Materiel
    from notifications import planner, relay
    from notifications.models import NotificationLog

    call_command("migrate", verbosity=0)
    checks = [
        ("check_court_terme_reminders", planner.check_court_terme_reminders),
        ("check_moyen_terme_reminders", planner.check_moyen_terme_reminders),
        ("check_long_terme_reminders", planner.check_long_terme_reminders),
        ("check_overdue_materials", planner.check_overdue_materials),
        ("dispatch_due_notifications", relay.dispatch_due_notifications),
    ]
    now = timezone.now()
    print(f"database: {connection.vendor}")
    header = f"{'open loans':>10}  {'task':<30} {'1st run':>9} {'queries':>7} {'rows':>7} {'2nd run':>9} {'queries':>7}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        NotificationLog.objects.all().delete()
        Attribution.objects.all().delete()
        Materiel.objects.all().delete()
        Client.objects.all().delete()
        make_loans(size, now)
        for name, function in checks:
            before = NotificationLog.objects.count()
            first, first_queries = timed(function, now)
            planned = NotificationLog.objects.count() - before
            second, second_queries = timed(function, now)
            print(
                f"{size:>10}  {name:<30} {first:>8.3f}s {first_queries:>7} {planned:>7} {second:>8.3f}s {second_queries:>7}",
                flush=True,
            )


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else "1000,10000,100000"
    main([int(size) for size in arg.split(",")])
