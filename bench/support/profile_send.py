"""Where a worker's send spends its time: N email sends through `tasks.send_notification`'s body, in this
process, against the throwaway PostgreSQL and SMTP sink of bench/stack.py, under cProfile.

    .venv/bin/python -m bench.support.profile_send [N] [--sort tottime|cumtime]
    .venv/bin/python -m bench.support.profile_send [N] --steps     # ms per step, no profiler

Prints ms per send and the top functions; the Celery signals a worker runs around each task
(`radgestmat.celery.close_old_database_connections`) are called as the worker calls them.
``--steps`` times the send's steps (claim, load, render, .ics, SMTP, outcome) with a clock
around each instead: the profiler inflates Python-heavy steps several times over.
"""

from __future__ import annotations

import collections
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def postgres_cpu(port: int) -> float:
    """User + system CPU seconds of the throwaway cluster's processes (its postmaster and backends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            if str(port) not in (proc / "cmdline").read_text() and not _child_of_port(proc, port):
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            continue
    return total


def _child_of_port(proc: Path, port: int) -> bool:
    parent = (proc / "stat").read_text().rpartition(")")[2].split()[1]
    try:
        return str(port) in Path(f"/proc/{parent}/cmdline").read_text()
    except OSError:
        return False


# (module, function, label): the send's steps, timed by --steps.
STEPS = (
    ("notifications.sending", "claim_group", "claim (one statement, with the clock)"),
    ("notifications.sending", "load_for_sending", "load (rows, loan, item, borrower)"),
    ("notifications.sending", "irrelevance", "still worth sending?"),
    ("notifications.sending", "render", "render (subject, text, HTML)"),
    ("notifications.ics", "attachments_for", ".ics"),
    ("notifications.channels.email", "_send_on_shared_connection", "MIME + SMTP (+ 'may be accepted' mark)"),
    ("notifications.sending", "_finish", "outcome (UPDATE)"),
)


def time_steps() -> collections.Counter:
    """Wrap each of `STEPS` with a clock; returns the counter the wrappers add their seconds to."""
    import importlib

    spent: collections.Counter = collections.Counter()
    for module_name, name, label in STEPS:
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            began = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - began

        setattr(module, name, timed)
    return spent


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500
    sort = sys.argv[sys.argv.index("--sort") + 1] if "--sort" in sys.argv else "cumtime"
    from bench.stack import throwaway_stack

    with throwaway_stack("profile-send") as servers:
        servers.stack.use_here()
        import django

        django.setup()
        from django.core.management import call_command

        from bench.delivery import plan_notifications
        from notifications import sending
        from radgestmat.celery import close_old_database_connections

        call_command("migrate", verbosity=0)
        ids = plan_notifications(n + 50, serial="PROF", whatsapp_share=0)

        class Task:
            class request:
                is_eager = False

        def send(log_id: int) -> None:
            close_old_database_connections(task=Task)
            sending.send_notification(log_id)  # as the task calls it: the claim reads the clock
            close_old_database_connections(task=Task)

        steps = time_steps() if "--steps" in sys.argv else None
        for log_id in ids[:50]:  # warm up: connections, templates, translations
            send(log_id)
        if steps is not None:
            steps.clear()
        profiler = cProfile.Profile()
        profile = "--no-profile" not in sys.argv and steps is None
        started, cpu, server_cpu = time.perf_counter(), time.process_time(), postgres_cpu(servers.postgres.port)
        if profile:
            profiler.enable()
        for log_id in ids[50:]:
            send(log_id)
        profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = postgres_cpu(servers.postgres.port) - server_cpu
        print(
            f"{n} sends: {elapsed * 1000 / n:.2f} ms per send (wall), {cpu * 1000 / n:.2f} ms CPU of this process"
            f", {server_cpu * 1000 / n:.2f} ms CPU of PostgreSQL"
            + (" (under the profiler)" if profile else "")
            + f"; load {os.getloadavg()[0]:.1f}"
        )
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            print(f"statements prepared on this connection: {cursor.fetchone()[0]}")
        if steps is not None:
            for label, seconds in steps.most_common():
                print(f"  {seconds * 1000 / n:6.2f} ms  {label}")
            print(f"  {(elapsed - sum(steps.values())) * 1000 / n:6.2f} ms  the rest (task signals, logging, glue)")
        if profile:
            pstats.Stats(profiler).sort_stats(sort).print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
