"""How fast the staff pages answer with a big history.

Prints one table: per page, the median time of 5 requests and the number of database
queries, and writes it to bench/results/staff_pages.json. Uses the PostgreSQL database
radgestmat_bench_pages (or BENCH_DATABASE_URL), filled once and reused while the sizes stay the same.

    .venv/bin/python bench/staff_pages.py             # 10,000 loans, 100,000 log rows
    .venv/bin/python bench/staff_pages.py --large     # 100,000 loans, 1,000,000 log rows
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import bench_database_url, environment, print_environment, write_json

os.environ.update(
    DJANGO_SETTINGS_MODULE="radgestmat.settings",
    DEBUG="1",
    LANGUAGE_CODE="fr",
    LOG_LEVEL="WARNING",
    DATABASE_URL=bench_database_url("radgestmat_bench_pages"),
)

PAGES = [
    ("dashboard", "/"),
    ("loans: out, by due", "/loans/"),
    ("loans: overdue", "/loans/?state=overdue"),
    ("loans: all, by start", "/loans/?state=all&sort=-start"),
    ("loans: search code", "/loans/?state=all&q=BM-001234"),
    ("loans: search client", "/loans/?state=all&q=Client%20123"),
    ("loans: page 50", "/loans/?state=all&page=50"),
    ("materials", "/materials/"),
    ("clients", "/clients/"),
    ("client page", "/clients/{client}/"),
    ("loan page", "/loans/{loan}/"),
    ("notification log", "/notifications/"),
    ("log: failed, email", "/notifications/?statut=ECHEC_PERMANENT&canal=EMAIL"),
    ("log: one month", "/notifications/?date_from={month_ago}&date_to={today}"),
    ("log: page 100", "/notifications/?page=100"),
    ("delivery rate, 30 days", "/notifications/delivery/"),
    # The front desk pages of issue 17: the cards' lists, the exports, the activity feed's tabs, one row.
    ("loans: due in 2 h", "/loans/?window=due_2h"),
    ("loans: returned today", "/loans/?state=returned&window=returned_today"),
    ("loans export (out)", "/loans/export.csv"),
    ("overdue report", "/loans/overdue.csv"),
    ("log: planned tab", "/notifications/?tab=planned"),
    ("log: failed tab", "/notifications/?tab=failed"),
    ("log: all, client", "/notifications/?tab=all&client=Client%20123"),
    ("notification page", "/notifications/{notification}/"),
    ("lend form, client known", "/loans/new/?client={client}"),
    ("loans: unreachable", "/loans/?reach=none"),
    ("scan to return", "/loans/scan-return/?last={returned}"),
    ("basket, 10 items", "/loans/basket/"),
]


def fill(n_loans: int, n_logs: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from assets.models import Attribution, Client, LoanEvent, Materiel, classify_duree
    from notifications.models import Canal, NotificationLog, Statut, TypeNotification

    call_command("migrate", verbosity=0)
    if Attribution.objects.count() == n_loans and NotificationLog.objects.count() == n_logs:
        return
    print(f"filling {n_loans} loans and {n_logs} log rows (once)...", flush=True)
    NotificationLog.objects.all().delete()
    LoanEvent.objects.all().delete()
    Attribution.objects.all().delete()
    Materiel.objects.all().delete()
    Client.objects.all().delete()
    get_user_model().objects.update_or_create(username="bench", defaults={"is_staff": True})
    now = timezone.now()
    n_materiels, n_clients = max(1, n_loans // 5), max(1, n_loans // 20)
    Materiel.objects.bulk_create(
        [Materiel(code=f"BM-{i:06d}", name=f"Matériel {i}") for i in range(n_materiels)], batch_size=5000
    )
    Client.objects.bulk_create(
        [Client(name=f"Client {i}", email=f"c{i}@example.org") for i in range(n_clients)], batch_size=5000
    )
    materiels = list(Materiel.objects.values_list("id", flat=True))
    clients = list(Client.objects.values_list("id", flat=True))
    loans = []
    for i in range(n_loans):
        start = now - timedelta(hours=3 * (n_loans - i))
        due = start + timedelta(hours=(2, 8, 72)[i % 3])
        still_out = i >= n_loans - len(materiels) // 4  # the most recent loans, one per material
        loans.append(
            Attribution(
                materiel_id=materiels[i % len(materiels)],
                client_id=clients[i % len(clients)],
                date_debut=start,
                date_retour_prevue=due,
                date_retour_effective=None if still_out else due - timedelta(minutes=30),
                statut="EN_COURS" if still_out else "RESTITUEE",
                duree=classify_duree(start, due),
            )
        )
    Attribution.objects.bulk_create(loans, batch_size=5000)
    loan_rows = list(Attribution.objects.order_by("id").values_list("id", "date_debut"))
    events = []
    for i, (loan_id, start) in enumerate(loan_rows):  # a history on every loan, an extension on every third
        events.append(LoanEvent(attribution_id=loan_id, kind="LENT", at=start))
        if i % 3 == 0:
            events.append(LoanEvent(attribution_id=loan_id, kind="EXTENDED", at=start, old_due=start, new_due=start))
    LoanEvent.objects.bulk_create(events, batch_size=10000)
    types = list(TypeNotification.values)
    statuts = [Statut.ENVOYEE] * 17 + [Statut.ECHEC_PERMANENT, Statut.ANNULEE, Statut.EN_ATTENTE]
    batch = []
    for j in range(n_logs):
        loan_id, start = loan_rows[j % len(loan_rows)]
        k = j // len(loan_rows)
        batch.append(
            NotificationLog(
                attribution_id=loan_id,
                type_notification=types[k % len(types)],
                canal=(Canal.EMAIL, Canal.WHATSAPP)[(k // len(types)) % 2],
                niveau_escalade=k // (2 * len(types)),
                statut=statuts[j % len(statuts)],
                date_scheduled=start + timedelta(minutes=k),
                erreur_message="550 5.1.1 no such user" if j % len(statuts) == 17 else "",
                erreur_code="INVALID_RECIPIENT" if j % len(statuts) == 17 else "",
                reason_code="REMINDER_AFTER_RETURN" if j % len(statuts) == 18 else "",
            )
        )
        if len(batch) == 10000:
            NotificationLog.objects.bulk_create(batch)
            batch = []
    NotificationLog.objects.bulk_create(batch)
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would have gathered by now
        cursor.execute("ANALYZE")


def main(n_loans: int, n_logs: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client as HttpClient
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    from assets.desk_views import BASKET_SESSION_KEY
    from assets.models import Attribution, Materiel
    from notifications.models import NotificationLog

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    fill(n_loans, n_logs)
    http = HttpClient()
    http.force_login(get_user_model().objects.get(username="bench"))
    loan = Attribution.objects.open().order_by("-id").first()
    assert loan is not None  # fill() just made open loans
    returned = Attribution.objects.returned().order_by("-id").values_list("id", flat=True).first()
    session = http.session
    session[BASKET_SESSION_KEY] = list(Materiel.objects.order_by("id").values_list("id", flat=True)[:10])
    session.save()
    today = timezone.localdate()
    notification = NotificationLog.objects.filter(statut="ECHEC_PERMANENT").order_by("-id").values_list("id", flat=True)
    values = {
        "client": loan.client_id,
        "loan": loan.pk,
        "notification": notification.first(),
        "returned": returned,
        "today": today,
        "month_ago": today - timedelta(days=30),
    }
    env = environment()
    print_environment(env)
    print(f"\n{n_loans} loans, {n_logs} log rows\n")
    print(f"{'page':<26} {'median ms':>10} {'queries':>8}")
    print("-" * 46)
    results = []
    for label, url in PAGES:
        url = url.format(**values)
        timings = []
        for _ in range(5):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = http.get(url)
                if response.streaming:  # an export: the time to the last byte
                    b"".join(response.streaming_content)  # type: ignore[attr-defined]  # a StreamingHttpResponse
                timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        median = statistics.median(timings)
        print(f"{label:<26} {median:>10.1f} {len(queries):>8}")
        results.append({"page": label, "url": url, "median_ms": round(median, 1), "queries": len(queries)})
    write_json("staff_pages", env, {"loans": n_loans, "log_rows": n_logs, "pages": results})


if __name__ == "__main__":
    main(*((100_000, 1_000_000) if "--large" in sys.argv[1:] else (10_000, 100_000)))
