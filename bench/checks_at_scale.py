"""Checks at scale: the five periodic checks and the relay over 10k / 100k (/ 1M) open loans, on PostgreSQL.

For each number of open loans and each task: wall time, database time (the sum of the
query durations, measured with ``connection.execute_wrapper``), query count and rows
planned, for the first run (it plans) and the steady-state second run (everything
already planned). Then the nightly cleanup of old finished log rows (100,000, or
1,000,000 with ``--large``): wall and database time, statements, the longest one; and
``get_scheduler_status()`` over that big log.

Prints one table and writes the same data to ``bench/results/checks_at_scale.json``.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/radgestmat_bench \\
        .venv/bin/python bench/checks_at_scale.py [--large] [--sizes 10000,100000] [--broker redis]

The database named by BENCH_DATABASE_URL (default: radgestmat_bench on the local
PostgreSQL, see bench/report.py) is created when missing and emptied at each size: never point it at data you want to keep. The broker is an
in-memory one by default (enqueueing is not what is measured); ``--broker redis``
uses ``REDIS_URL`` (its queues are purged afterwards).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import report  # noqa: E402

DATABASE_NAME = "radgestmat_bench"
QUICK_SIZES = [10_000, 100_000]
LARGE_SIZES = [10_000, 100_000, 1_000_000]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="add 1,000,000 loans and clean up 1,000,000 rows")
    parser.add_argument("--sizes", help="comma-separated numbers of open loans (overrides the default sizes)")
    parser.add_argument("--cleanup-rows", type=int, help="old log rows for the cleanup section")
    parser.add_argument("--broker", choices=["memory", "redis"], default="memory")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> str:
    """Environment for Django before it is set up; returns the database URL. Exits with one line on a bad URL."""
    url = report.bench_database_url(DATABASE_NAME)
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        sys.exit(f"checks_at_scale: BENCH_DATABASE_URL must name a PostgreSQL database, not {url.split(':')[0]}")
    ensure_database(url)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="radgestmat.settings",
        DEBUG="1",
        DATABASE_URL=url,
        DB_CONN_MAX_AGE="0",
        CELERY_BROKER_URL="memory://localhost/" if args.broker == "memory" else redis_url,
        LOG_LEVEL="WARNING",
        # WhatsApp on (nothing is sent), so borrowers who want it get WhatsApp rows too.
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="bench",
        TWILIO_WHATSAPP_FROM="+14155238886",
    )
    return url


def ensure_database(url: str) -> None:
    """Create the bench database when it does not exist; exit with one clear line when the server does not answer."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        return
    except psycopg.OperationalError as error:
        if f'database "{name}" does not exist' not in str(error):
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            sys.exit(f"checks_at_scale: cannot reach PostgreSQL at BENCH_DATABASE_URL ({first})")
    admin = parts._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        sys.exit(f"checks_at_scale: database {name} is missing and could not be created ({error})")
    print(f"created database {name}")


class Meter:
    """Counts the queries of a block and sums their durations (``connection.execute_wrapper``)."""

    def __init__(self):
        self.queries = 0
        self.db_seconds = 0.0
        self.longest = 0.0
        self.longest_sql = ""
        self.insert_seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            self.queries += 1
            self.db_seconds += spent
            if sql.lstrip().upper().startswith("INSERT"):
                self.insert_seconds += spent
            if spent > self.longest:
                self.longest, self.longest_sql = spent, sql[:160]


@contextmanager
def metered():
    from django.db import connection

    meter = Meter()
    started = time.perf_counter()
    with connection.execute_wrapper(meter):
        yield meter
    meter.wall = time.perf_counter() - started


def broker_name(broker: str) -> str:
    return "memory:// (kombu in-memory transport)" if broker == "memory" else "redis (REDIS_URL)"


def loadavg() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def empty_tables() -> None:
    from django.db import connection

    from assets.models import Attribution, Client, Materiel
    from notifications.models import NotificationLog, NotificationPreferences

    tables = [m._meta.db_table for m in (NotificationLog, NotificationPreferences, Attribution, Materiel, Client)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def make_loans(count: int, now, *, lender_id: int) -> None:
    """``count`` open loans in a few set-based INSERTs (generate_series), with a realistic mix.

    - one material per loan, one client per 4 loans; 40 % of clients have a phone;
      25 % have saved preferences (WhatsApp on for most of those, some with email off,
      some with a reminder switched off);
    - classes: 30 % short (0.5–3.9 h), 30 % medium (4.1–23.9 h), 40 % long (25 h–10 days);
    - due times uniform from a day ago to two weeks ahead, plus 1 % one to three days late
      (so some loans are at overdue levels 2 and 3).
    """
    from django.db import connection

    from assets.models import Attribution, Client, Materiel
    from notifications.models import NotificationPreferences

    clients = max(1, count // 4)
    sql = [
        (
            (
                f"INSERT INTO {Materiel._meta.db_table} (code, name, category, state, notes) "
                "SELECT 'BX-' || lpad(g::text, 8, '0'), 'Caméra ' || g, 'Vidéo', 'lent', '' FROM generate_series(1, %s) g"
            ),
            [count],
        ),
        (
            (
                f"INSERT INTO {Client._meta.db_table} (name, email, phone, organisation, language) "
                "SELECT 'Borrower ' || g, CASE WHEN g %% 20 = 0 THEN '' ELSE 'b' || g || '@example.org' END, "
                "CASE WHEN g %% 5 < 2 THEN '+3361' || lpad((g %% 10000000)::text, 7, '0') ELSE '' END, '', "
                "CASE WHEN g %% 7 = 0 THEN 'en' ELSE 'fr' END FROM generate_series(1, %s) g"
            ),
            [clients],
        ),
        (
            (
                f"INSERT INTO {NotificationPreferences._meta.db_table} (client_id, notifications_email, notifications_whatsapp, "
                "sms_enabled, phone_number, rappel_2h_avant, rappel_j_moins_2, rappel_j_moins_1, rappel_final, updated_at) "
                "SELECT c.id, c.id %% 10 <> 3, c.id %% 10 <> 5, false, "
                "CASE WHEN c.id %% 8 = 0 THEN '+3362' || lpad((c.id %% 10000000)::text, 7, '0') ELSE '' END, "
                "c.id %% 16 <> 4, c.id %% 12 <> 8, true, true, %s "
                f"FROM {Client._meta.db_table} c WHERE c.id %% 4 = 0"
            ),
            [now],
        ),
        (
            # due = now + offset minutes; start = due - duration; duree from the planned duration.
            (
                f"INSERT INTO {Attribution._meta.db_table} (materiel_id, client_id, created_by_id, date_debut, "
                "date_retour_prevue, date_retour_effective, statut, duree, notes, created_at, borrower_link_version) "
                "SELECT m.id, 1 + (m.id %% %s), %s, x.due - x.length, x.due, NULL, 'EN_COURS', "
                "CASE WHEN x.length < interval '4 hours' THEN 'COURT' WHEN x.length <= interval '24 hours' THEN 'MOYEN' "
                "ELSE 'LONG' END, '', x.due - x.length, 0 "
                f"FROM {Materiel._meta.db_table} m CROSS JOIN LATERAL (SELECT "
                "  CASE WHEN random() < 0.01 THEN %s - (interval '1 day' + random() * interval '2 days') "
                "       ELSE %s + (random() * interval '15 days') - interval '1 day' END AS due, "
                "  CASE WHEN r < 0.3 THEN interval '30 minutes' + random() * interval '204 minutes' "
                "       WHEN r < 0.6 THEN interval '246 minutes' + random() * interval '1188 minutes' "
                "       ELSE interval '25 hours' + random() * interval '215 hours' END AS length "
                "  FROM (SELECT random() AS r, m.id AS mid) s) x"
            ),
            [clients, lender_id, now, now],
        ),
    ]
    with connection.cursor() as cursor:
        for statement, params in sql:
            cursor.execute(statement, params)
        cursor.execute("ANALYZE")


def make_old_logs(count: int, now) -> None:
    """``count`` finished log rows 91–400 days old, on returned loans (4 rows a loan), 1 in 50 a fallback.

    Plus 1 % old rows still waiting, which the cleanup must keep.
    """
    from django.db import connection

    from assets.models import Attribution, Client, Materiel
    from notifications.models import NotificationLog

    loans = (count + 3) // 4
    log = NotificationLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Materiel._meta.db_table} (code, name, category, state, notes) "
            "SELECT 'OLD-' || lpad(g::text, 8, '0'), 'Ancien ' || g, '', 'available', '' FROM generate_series(1, %s) g",
            [loans],
        )
        cursor.execute(f"SELECT min(id) FROM {Client._meta.db_table}")
        first_client = cursor.fetchone()[0]
        cursor.execute(
            f"INSERT INTO {Attribution._meta.db_table} (materiel_id, client_id, created_by_id, date_debut, "
            "date_retour_prevue, date_retour_effective, statut, duree, notes, created_at, borrower_link_version) "
            "SELECT m.id, %s, NULL, s.start, s.start + interval '3 days', s.start + interval '2 days', "
            "'RESTITUEE', 'LONG', '', s.start, 0 "
            f"FROM {Materiel._meta.db_table} m CROSS JOIN LATERAL "
            "(SELECT %s - interval '95 days' - random() * interval '300 days' + m.id * interval '0 seconds' AS start) s "
            "WHERE m.code LIKE 'OLD-%%'",
            [first_client, now],
        )
        cursor.execute(
            f"INSERT INTO {log} (attribution_id, type_notification, canal, audience, niveau_escalade, statut, "
            "date_scheduled, date_envoi, nb_tentatives, duree_emprunt, destinataire, erreur_message, "
            "provider_message_id, delivery_status, created_at, updated_at) "
            "SELECT a.id, t.type, t.canal, 'CLIENT', 0, "
            "CASE WHEN a.id %% 100 = 0 AND t.n = 1 THEN 'EN_ATTENTE' WHEN a.id %% 13 = 0 THEN 'ECHEC_PERMANENT' "
            "ELSE 'ENVOYEE' END, "
            "a.date_debut + t.n * interval '1 hour', a.date_debut + t.n * interval '1 hour', 1, 'LONG', "
            "'b@example.org', '', '', '', a.date_debut + t.n * interval '1 hour', a.date_debut + t.n * interval '1 hour' "
            f"FROM {Attribution._meta.db_table} a CROSS JOIN (VALUES (1, 'CREATION', 'EMAIL'), (2, 'CREATION', 'WHATSAPP'), "
            "(3, 'RESTITUTION', 'EMAIL'), (4, 'RESTITUTION', 'WHATSAPP')) AS t(n, type, canal) "
            "WHERE a.statut = 'RESTITUEE' ORDER BY a.date_debut, t.n",
            [],
        )
        # The email copy fell back from the WhatsApp one for 1 loan in 50.
        cursor.execute(
            f"UPDATE {log} e SET fallback_of_id = w.id FROM {log} w "
            "WHERE e.attribution_id = w.attribution_id AND e.type_notification = w.type_notification "
            "AND e.canal = 'EMAIL' AND w.canal = 'WHATSAPP' AND e.attribution_id %% 50 = 0 "
            f"AND e.attribution_id IN (SELECT id FROM {Attribution._meta.db_table} WHERE statut = 'RESTITUEE')",
            [],
        )
        cursor.execute("VACUUM ANALYZE" if connection.get_autocommit() else "ANALYZE")


def log_count() -> int:
    from django.db import connection

    from notifications.models import NotificationLog

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {NotificationLog._meta.db_table}")
        return cursor.fetchone()[0]


def run_checks(size: int, now, lender_id: int) -> tuple[list[dict], dict]:
    from notifications import cleanup, planner, relay

    tasks = [
        ("check_court_terme_reminders", planner.check_court_terme_reminders),
        ("check_moyen_terme_reminders", planner.check_moyen_terme_reminders),
        ("check_long_terme_reminders", planner.check_long_terme_reminders),
        ("check_overdue_materials", planner.check_overdue_materials),
        ("cleanup_old_notifications", cleanup.cleanup_old_notifications),
        ("dispatch_due_notifications", relay.dispatch_due_notifications),
    ]
    empty_tables()
    started = time.perf_counter()
    make_loans(size, now, lender_id=lender_id)
    load_seconds = time.perf_counter() - started
    print(f"  {size:,} open loans loaded in {load_seconds:.1f} s", flush=True)
    rows, planned_total, planning_wall, planning_insert = [], 0, 0.0, 0.0
    for name, function in tasks:
        before = log_count()
        with metered() as first:
            function(now=now)
        planned = log_count() - before
        with metered() as second:
            function(now=now)
        if name.startswith("check_"):
            planned_total += planned
            planning_wall += first.wall
            planning_insert += first.insert_seconds
        rows.append(
            {
                "open_loans": size,
                "task": name,
                "first": {"wall_s": first.wall, "db_s": first.db_seconds, "queries": first.queries},
                "rows_planned": planned,
                "second": {"wall_s": second.wall, "db_s": second.db_seconds, "queries": second.queries},
                "longest_statement_s": max(first.longest, second.longest),
            }
        )
        print_row(rows[-1])
    rate = {
        "open_loans": size,
        "rows_planned": planned_total,
        "first_runs_wall_s": planning_wall,
        "insert_statements_s": planning_insert,
        "rows_per_s_wall": planned_total / planning_wall if planning_wall else 0.0,
        "rows_per_s_insert": planned_total / planning_insert if planning_insert else 0.0,
        "load_seconds": load_seconds,
    }
    print(
        f"{'':>10}  planning inserted {planned_total:,} rows: {rate['rows_per_s_wall']:,.0f} rows/s of check time, "
        f"{rate['rows_per_s_insert']:,.0f} rows/s of INSERT time",
        flush=True,
    )
    return rows, rate


HEADER = (
    f"{'loans':>10}  {'task':<28} {'1st wall':>9} {'1st db':>8} {'q':>4} {'rows':>8}"
    f" {'2nd wall':>9} {'2nd db':>8} {'q':>4}"
)


def print_row(row: dict) -> None:
    f, s = row["first"], row["second"]
    print(
        f"{row['open_loans']:>10}  {row['task']:<28} {f['wall_s']:>8.3f}s {f['db_s']:>7.3f}s {f['queries']:>4} "
        f"{row['rows_planned']:>8} {s['wall_s']:>8.3f}s {s['db_s']:>7.3f}s {s['queries']:>4}",
        flush=True,
    )


def run_cleanup(rows_old: int, now) -> dict:
    from django.conf import settings

    from notifications import cleanup
    from notifications.scheduler_status import get_scheduler_status

    started = time.perf_counter()
    make_old_logs(rows_old, now)
    print(f"  {rows_old:,} old log rows written in {time.perf_counter() - started:.1f} s", flush=True)
    total = log_count()
    with metered() as status:
        get_scheduler_status(now=now, ping_timeout=0.2)
    print(
        f"{total:>10}  {'scheduler_status':<28} {status.wall:>8.3f}s {status.db_seconds:>7.3f}s {status.queries:>4}"
        f"   (log rows; broker part excluded from db)",
        flush=True,
    )
    with metered() as run:
        removed = cleanup.cleanup_old_notifications(now=now)
    result = {
        "old_rows": rows_old,
        "log_rows_before": total,
        "removed": removed["notifications"],
        "batch_size": settings.CLEANUP_BATCH_SIZE,
        "wall_s": run.wall,
        "db_s": run.db_seconds,
        "queries": run.queries,
        "longest_statement_s": run.longest,
        "longest_statement": run.longest_sql,
        "rows_per_s": removed["notifications"] / run.wall if run.wall else 0.0,
        "scheduler_status": {
            "log_rows": total,
            "wall_s": status.wall,
            "db_s": status.db_seconds,
            "queries": status.queries,
        },
    }
    print(
        f"{rows_old:>10}  {'cleanup (old rows)':<28} {run.wall:>8.3f}s {run.db_seconds:>7.3f}s {run.queries:>4} "
        f"{removed['notifications']:>8}   longest statement {run.longest * 1000:.0f} ms, batch {settings.CLEANUP_BATCH_SIZE}",
        flush=True,
    )
    return result


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    configure(args)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from notifications.schedule import register_schedule

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (LARGE_SIZES if args.large else QUICK_SIZES)
    cleanup_rows = args.cleanup_rows or (1_000_000 if args.large else 100_000)
    call_command("migrate", verbosity=0)
    env = report.environment()
    env["loadavg_start"] = loadavg()
    env["broker"] = broker_name(args.broker)
    report.print_environment(env)
    print(f"database {connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}; broker {env['broker']}")
    print("db = sum of query durations; q = queries; rows = NotificationLog rows the first run planned")
    print(HEADER)
    print("-" * len(HEADER))
    now = timezone.now()
    register_schedule()
    lender, _ = get_user_model().objects.get_or_create(
        username="bench-lender", defaults={"is_staff": True, "email": "lender@example.org"}
    )
    results, rates = [], []
    for size in sizes:
        rows, rate = run_checks(size, now, lender.pk)
        results.extend(rows)
        rates.append(rate)
    cleanup_result = run_cleanup(cleanup_rows, now)
    if args.broker == "redis":
        from radgestmat.celery import app

        app.control.purge()
    env["loadavg_end"] = loadavg()
    report.write_json(
        "checks_at_scale",
        env,
        {"now": now.isoformat(), "checks": results, "planning_insert_rate": rates, "cleanup": cleanup_result},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
