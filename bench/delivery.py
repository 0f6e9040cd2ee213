"""Delivery as operators live with it: throughput against raw Celery, CREATION latency, worker memory.

    .venv/bin/python bench/delivery.py            # quick sizes (make bench)
    .venv/bin/python bench/delivery.py --large    # N = 10,000 notifications, 1,000 loans

1. Throughput, side by side in one run, through real `celery -A radgestmat worker`
   processes (prefork, the Procfile's concurrency of 4, the product's acks_late and
   prefetch multiplier 1), the same command line for both:
   (a) raw Celery: N no-op tasks (`bench.support.noop_task`, no result stored) on the
       same queue of the same Redis;
   (b) N notifications already planned (70 % email, 30 % WhatsApp), then enqueued by
       `outbox.mark_enqueued`, through the real `tasks.send_notification` (claim,
       render, send) to the SMTP sink and the fake Twilio API of `bench/stack.py`.
   (c) the floor (`bench.support.floor_task`): the same rows sent by a task that only claims,
       marks, sends one prebuilt message and records the outcome — what the constraints cost;
   (d) the peers (django-celery-email, django-post-office) sending the same message.
   Rate = N / (first publish -> the broker holds no message, queued or unacked);
   the worker's own count of tasks run confirms all N ran. (b) then checks that
   every row is ENVOYEE and each message reached a server exactly once (`tally`).
   Target: (b)/(a) >= 0.5.
2. Latency: loans lent one after another through `assets.services.lend` with the
   worker idle; latency = SMTP sink acceptance of the loan's CREATION email minus the
   commit of the loan's transaction. p50/p95/p99; target p99 < 1 s.
3. Memory: VmRSS of the (b) worker (main process + pool children), idle before the
   throughput run and after it; also their PSS, which counts the pages the forked
   children share with the main process once.

Everything runs on a throwaway PostgreSQL cluster and Redis server of its own
(`bench.stack`), not the machine's shared ones: the numbers then do not depend on
what other databases or Redis clients on the machine hold or do, nothing is left
behind, and the benchmark matches the fault drills' stack. The cluster keeps
PostgreSQL's defaults (fsync and synchronous_commit on), so commits cost what they
cost in production. Prints one table and writes bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report as bench_report
from bench.stack import ROOT, Proc, Stack, StackError, tally, throwaway_stack, wait_until
from radgestmat import queues

QUICK = {"notifications": 2000, "loans": 200, "backlog": 2000, "backlog_loans": 50}
LARGE = {"notifications": 10_000, "loans": 1000, "backlog": 10_000, "backlog_loans": 200}
WHATSAPP_SHARE = 0.3
CONCURRENCY = (
    4  # the Procfile's WORKER_CONCURRENCY default (the best of 2, 3, 4, 8 on 2 cores); --concurrency changes it
)
QUEUE = "notifications"
# Every run of ours uses this very command line; the include only adds the no-op and the floor's tasks.
WORKER_ARGS = ("-I", "bench.support.noop_task,bench.support.floor_task")
FLOOR_TASK = "bench.floor_send"
TARGET_RATIO = 0.35
TARGET_VS_CELERY_EMAIL = 1.0
TARGET_VS_POST_OFFICE = 0.7
TARGET_VS_NOOP = 0.35
TARGET_P99 = 1.0
TARGET_P99_UNDER_BACKLOG = 1.0


# --- Workers ---------------------------------------------------------------------------------------


def concurrency() -> int:
    return int(os.environ.get("BENCH_CONCURRENCY", CONCURRENCY))


def start_worker(stack: Stack, name: str, *, extra_args: tuple[str, ...] = WORKER_ARGS) -> Proc:
    proc = stack.worker(name, concurrency=concurrency(), queues=queues.WORKER_QUEUES, extra_args=extra_args)
    wait_until(lambda: not proc.alive() or " ready." in proc.output(), what=f"worker {name} to be ready", timeout=60)
    if not proc.alive():
        raise StackError(f"worker {name} exited at start:\n{proc.output()[-2000:]}")
    return proc


def tasks_run(name: str) -> dict[str, int]:
    """The worker's own count of tasks it ran, by task name (remote control `stats`)."""
    from radgestmat.celery import app

    replies = app.control.inspect(destination=[f"{name}@{platform.node()}"], timeout=2).stats() or {}
    return next((stats.get("total", {}) for stats in replies.values()), {})


def rss_kib(pid: int) -> int:
    return _proc_kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with the other pool processes (fork) count once in all."""
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def _proc_kib(path: str, label: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(label):
            return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its live children (/proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in [pid, *children_of(pid)]:
        fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def worker_memory(proc: Proc) -> dict:
    """Resident memory of the worker's main process and each pool child, in MiB."""
    main = proc.popen.pid
    children = children_of(main)
    main_mib = rss_kib(main) / 1024
    child_mib = [rss_kib(child) / 1024 for child in children]
    return {
        "main_mib": round(main_mib, 1),
        "children_mib": [round(value, 1) for value in child_mib],
        "total_mib": round(main_mib + sum(child_mib), 1),
        "total_pss_mib": round(sum(pss_kib(each) for each in [main, *children]) / 1024, 1),
    }


# --- 1. Throughput --------------------------------------------------------------------------------


def drain_seconds(redis_client, publish, *, started: float, timeout: float) -> tuple[float, float]:
    """Run ``publish``; return (seconds publishing took, seconds until the broker held no message)."""
    publish()
    published = time.monotonic() - started
    deadline = time.monotonic() + timeout
    while any(redis_client.llen(queue) for queue in queues.ALL) or redis_client.hlen("unacked"):
        if time.monotonic() > deadline:
            raise StackError(f"the queue did not drain within {timeout:.0f} s")
        time.sleep(0.005)
    return published, time.monotonic() - started


def wait_tasks_run(name: str, task: str, count: int) -> int:
    """Wait until the worker counted ``count`` runs of ``task``; return its count (a retry runs a task again)."""
    # The broker empties a moment before the worker counts the last task (ack, then bookkeeping).
    wait_until(
        lambda: tasks_run(name).get(task, 0) >= count, what=f"{count} {task} tasks counted by {name}", timeout=30
    )
    return tasks_run(name).get(task, 0)


def raw_celery(stack: Stack, redis_client, n: int) -> dict:
    from bench.support.noop_task import noop

    proc = start_worker(stack, "noop")
    cpu_before = cpu_seconds(proc.popen.pid)
    started = time.monotonic()
    published, drained = drain_seconds(
        redis_client,
        lambda: [noop.apply_async((index,), queue=QUEUE) for index in range(n)],
        started=started,
        timeout=600,
    )
    wait_tasks_run("noop", "bench.noop", n)
    cpu = cpu_seconds(proc.popen.pid) - cpu_before
    proc.stop()
    return {
        "tasks": n,
        "publish_seconds": round(published, 2),
        "seconds": round(drained, 2),
        "rate": n / drained,
        "worker_cpu_ms_per_task": round(cpu * 1000 / n, 2),
    }


def plan_notifications(
    n: int, *, serial: str, type_notification: str = "CREATION", whatsapp_share: float = WHATSAPP_SHARE
) -> list[int]:
    """N loans, each with its ``type_notification`` row planned by the outbox (not enqueued); return the row ids.

    A borrower has either an email address (70 %) or a phone (30 %, WhatsApp), so each
    loan has exactly one row and the mix is exact. Phones are unique, so `tally`
    can match every WhatsApp message to its row.
    """
    from django.utils import timezone

    from assets.models import Attribution, Client, Materiel
    from notifications import outbox
    from notifications.models import NotificationLog, NotificationPreferences, TypeNotification

    now = timezone.now()
    texts = int(n * whatsapp_share)
    clients = Client.objects.bulk_create(
        Client(name=f"Emprunteur {serial}-{i}", phone=f"+336{i:08d}")
        if i < texts
        else Client(name=f"Emprunteur {serial}-{i}", email=f"borrower{i}@example.org")
        for i in range(n)
    )
    # WhatsApp is opt-in: the borrowers with a phone agreed to it.
    NotificationPreferences.objects.bulk_create(
        NotificationPreferences(client=client, notifications_whatsapp=True) for client in clients if client.phone
    )
    materiels = Materiel.objects.bulk_create(
        Materiel(code=f"{serial}-{i:06d}", name="Caméra", state=Materiel.State.LENT) for i in range(n)
    )
    due = now + timedelta(days=5)
    loans = Attribution.objects.bulk_create(
        Attribution(client=client, materiel=materiel, date_debut=now, date_retour_prevue=due, duree="LONG")
        for client, materiel in zip(clients, materiels, strict=False)
    )
    joined = Attribution.objects.filter(pk__in=[loan.pk for loan in loans]).select_related(*outbox.PLANNING_RELATED)
    planned = [outbox.Planned(loan, TypeNotification(type_notification), now) for loan in joined]
    rows = NotificationLog.objects.bulk_create(outbox.expand(planned))
    return [row.pk for row in rows]


def real_pipeline(
    stack: Stack,
    redis_client,
    n: int,
    *,
    whatsapp_share: float = WHATSAPP_SHARE,
    name: str = "pipeline",
    task: str = "tasks.send_notification",
) -> tuple[dict, Proc]:
    """N planned rows enqueued at once and sent by ``task``: ours, or the floor (`bench.support.floor_task`)."""
    from django.db import transaction
    from django.utils import timezone

    from notifications import outbox
    from notifications.models import Statut

    ids = plan_notifications(n, serial=name.upper(), whatsapp_share=whatsapp_share)
    if len(ids) != n:
        raise StackError(f"planned {len(ids)} rows for {n} loans")
    proc = start_worker(stack, name)
    time.sleep(1)  # let the pool children finish starting before the idle measurement
    memory_before = worker_memory(proc)
    cpu_before = cpu_seconds(proc.popen.pid)

    def publish() -> None:
        if task == FLOOR_TASK:
            from radgestmat.celery import app

            for log_id in ids:
                app.send_task(FLOOR_TASK, (log_id,), queue=queues.PRIORITY)
            return
        with transaction.atomic():
            outbox.mark_enqueued(ids, now=timezone.now())

    sessions_before, connections_before = stack.smtp.sessions, stack.twilio.connections
    emails_before, texts_before = stack.smtp.count, stack.twilio.count
    transactions_before = database_transactions()
    started = time.monotonic()
    published, drained = drain_seconds(redis_client, publish, started=started, timeout=1800)
    runs = wait_tasks_run(name, task, n)
    cpu = cpu_seconds(proc.popen.pid) - cpu_before
    time.sleep(1.5)  # PostgreSQL publishes a backend's statistics at most once a second
    # Less our own enqueue's transaction (the floor's publish writes nothing).
    transactions = database_transactions() - transactions_before - (0 if task == FLOOR_TASK else 1)
    memory_after = worker_memory(proc)
    statuts = _count_by_statut(ids)
    ledger = tally(ids, stack).as_dict()
    problems = []
    if statuts.get(Statut.ENVOYEE, 0) != n:
        problems.append(f"rows by statut: {statuts}")
    if ledger["sent_once"] != n:
        problems.append(f"ledger: {ledger}")
    result = {
        "notifications": n,
        "emails": stack.smtp.count - emails_before,
        "whatsapp": stack.twilio.count - texts_before,
        "publish_seconds": round(published, 2),
        "seconds": round(drained, 2),
        "rate": n / drained,
        "worker_cpu_ms_per_task": round(cpu * 1000 / n, 2),
        "database_transactions_per_send": round(transactions / n, 2),
        "task_runs": runs,  # more than the sends when some were retried
        "smtp_sessions": stack.smtp.sessions - sessions_before,
        "twilio_connections": stack.twilio.connections - connections_before,
        "statuts": statuts,
        "tally": ledger,
        "verified": not problems,
        "problems": problems,
        "memory_before": memory_before,
        "memory_after": memory_after,
    }
    return result, proc


# --- Peers ----------------------------------------------------------------------------------------

PEER_SETTINGS = "bench.peer_settings"
PEER_WORKER_ARGS = ("-I", "bench.support.peer_tasks,djcelery_email.tasks,post_office.tasks")
PEERS = {
    "celery-email": "django-celery-email (task per email)",
    "post-office-batch": "django-post-office (queued, send_queued batches)",
    "post-office-task": "django-post-office (task per mail)",
}
BENCH_REQUIREMENTS = ROOT / "requirements-bench.txt"


def ensure_peer_packages() -> None:
    """Install requirements-bench.txt into this interpreter's environment when a peer is missing."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("djcelery_email", "post_office")):
        return
    print(f"== installing the peers ({BENCH_REQUIREMENTS.name})", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(BENCH_REQUIREMENTS)], check=True, cwd=ROOT
    )


def sample_message(log_id: int, path: Path) -> None:
    """Write the subject, text and HTML of this row's email, for the peers to send the same size."""
    from django.utils import timezone

    from notifications import ics, sending
    from notifications.messages import render, with_override_flag
    from notifications.models import NotificationLog

    log = ics.with_extension_count(
        with_override_flag(NotificationLog.objects.select_related(*sending.SEND_RELATED))
    ).get(pk=log_id)
    message = render(log, now=timezone.now())
    path.write_text(json.dumps({"subject": message.subject, "body": message.body, "html": message.html}))


def peer_run(stack: Stack, mode: str, n: int, message_path: Path) -> dict:
    """One peer's throughput: its worker (same command shape, the peers' settings), then its producer."""
    saved = stack.settings
    stack.settings = {**saved, "DJANGO_SETTINGS_MODULE": PEER_SETTINGS}
    try:
        proc = start_worker(stack, f"peer-{mode}", extra_args=PEER_WORKER_ARGS)
        time.sleep(1)
        memory_before = worker_memory(proc)
        cpu_before = cpu_seconds(proc.popen.pid)
        received_before = stack.smtp.count
        sessions_before = stack.smtp.sessions
        result = subprocess.run(
            [sys.executable, "-m", "bench.support.peer_driver", mode, str(n), str(message_path)],
            cwd=ROOT,
            env={**stack.env(), "PEER_POST_OFFICE_CELERY": "0", "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"peer {mode} failed:\n{(result.stderr or result.stdout)[-2000:]}")
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        wait_until(lambda: stack.smtp.count - received_before >= n, what=f"{n} {mode} emails", timeout=30)
        cpu = cpu_seconds(proc.popen.pid) - cpu_before
        memory_after = worker_memory(proc)
        proc.stop()
    finally:
        stack.settings = saved
    received = stack.smtp.count - received_before
    return {
        "peer": PEERS[mode],
        "emails": n,
        "received": received,
        "unsent": measured["unsent"],
        "verified": received == n and not measured["unsent"],
        "publish_seconds": round(measured["publish_seconds"], 2),
        "seconds": round(measured["seconds"], 2),
        "rate": n / measured["seconds"],
        "worker_cpu_ms_per_email": round(cpu * 1000 / n, 2),
        "smtp_sessions": stack.smtp.sessions - sessions_before,
        "memory_before": memory_before,
        "memory_after": memory_after,
    }


def database_transactions() -> int:
    """Transactions committed in this database so far (each autocommit query is one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _count_by_statut(ids: list[int]) -> dict[str, int]:
    from django.db.models import Count

    from notifications.models import NotificationLog

    return {
        row["statut"]: row["n"]
        for row in NotificationLog.objects.filter(pk__in=ids).values("statut").annotate(n=Count("id"))
    }


# --- 2. Latency ------------------------------------------------------------------------------------


def lend_latencies(stack: Stack, count: int, *, serial: str = "LAT") -> list[float]:
    """Lend ``count`` loans one at a time, each after the previous CREATION email arrived (an idle worker)."""
    from django.db import transaction
    from django.utils import timezone

    from assets import services
    from assets.models import Client, Materiel
    from notifications.models import Canal, NotificationLog, TypeNotification

    latencies = []
    for index in range(count):
        client = Client.objects.create(name=f"Latence {serial} {index}", email=f"{serial.lower()}{index}@example.org")
        materiel = Materiel.objects.create(code=f"{serial}-{index:06d}", name="Caméra")
        committed: list[float] = []

        def stamp(committed: list[float] = committed) -> None:
            committed.append(time.time())

        # Our hook is registered first, so it runs first when lend's transaction commits.
        with transaction.atomic():
            transaction.on_commit(stamp)
            now = timezone.now()
            loan = services.lend(materiel=materiel, client=client, due=now + timedelta(days=5), now=now)
        row_id = NotificationLog.objects.get(
            attribution=loan, type_notification=TypeNotification.CREATION, canal=Canal.EMAIL
        ).pk
        wait_until(
            functools.partial(operator.contains, stack.smtp.accepted_at, row_id),
            what=f"the CREATION email of loan {loan.pk}",
            timeout=30,
            interval=0.002,
        )
        latencies.append(stack.smtp.accepted_at[row_id] - committed[0])
    return latencies


def lend_latencies_under_backlog(stack: Stack, redis_client, count: int, backlog: int) -> dict:
    """``backlog`` reminders enqueued at once, then ``count`` loans lent one after another while they drain.

    The reminders take the normal queue, the confirmations the priority queue (radgestmat.queues);
    the result says how many reminders were still waiting when the last confirmation arrived, so a
    backlog that had drained before the loans does not pass for a priority that works.
    """
    from django.db import transaction
    from django.utils import timezone

    from notifications import outbox

    ids = plan_notifications(backlog, serial="BL", type_notification="RAPPEL_J_MOINS_1")
    with transaction.atomic():
        outbox.mark_enqueued(ids, now=timezone.now())
    wait_until(lambda: redis_client.llen(queues.NOTIFICATIONS) > 0, what="the backlog to be queued", timeout=30)
    latencies = lend_latencies(stack, count, serial="BLAT")
    waiting = redis_client.llen(queues.NOTIFICATIONS)
    drain_seconds(redis_client, lambda: None, started=time.monotonic(), timeout=1800)
    return {
        "backlog": backlog,
        "loans": len(latencies),
        "reminders_still_queued_after_last_loan": waiting,
        **summary(latencies),
    }


def summary(latencies: list[float]) -> dict:
    return {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "mean": statistics.fmean(latencies),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- Report ----------------------------------------------------------------------------------------


def emails_table(report: dict) -> str:
    """The email runs side by side: emails/s (median of the rounds, every round's rate), ratio to ours, goal."""
    env, emails = report["environment"], report["emails_side_by_side"]
    medians, rates, ratios = emails["median_rates"], emails["rates"], emails["ratios"]
    ours = medians["email_pipeline"]
    goals = {
        "celery-email": ("ours >= 1.0x", ratios["email_pipeline_vs_celery_email"] >= TARGET_VS_CELERY_EMAIL),
        "post-office-batch": ("ours >= 0.7x", ratios["email_pipeline_vs_post_office_batch"] >= TARGET_VS_POST_OFFICE),
        "raw_celery": ("ours/no-op >= 0.35", ratios["email_pipeline_vs_noop"] >= TARGET_VS_NOOP),
    }
    names = {
        "raw_celery": "raw Celery no-op",
        "email_pipeline": "RadGestMat email pipeline",
        "floor": "  floor: claim, mark, SMTP, outcome only",
        **PEERS,
    }
    names.update({name: label for name, label in VARIANT_NAMES.items() if name in medians})
    lines = [
        (
            f"machine {env['cores']} cores, load {env['load_average']:.2f}; prefork x{concurrency()}, prefetch 1, "
            f"acks_late; {report['sizes']['notifications']} emails a run, {emails['rounds']} round(s), same SMTP sink"
        ),
        f"{'sender':<50} {'emails/s':>9}  {'rounds':<22} {'ours / it':>9}  goal",
        "-" * 112,
    ]
    for key, name in names.items():
        ratio = ours / medians[key]
        goal, met = goals.get(key, ("", True))
        verdict = f"{goal} {'ok' if met else 'MISSED'}" if goal else ""
        each = ", ".join(f"{rate:.0f}" for rate in rates[key])
        lines.append(f"{name:<50} {medians[key]:>9.0f}  {each:<22} {ratio:>8.2f}x  {verdict}".rstrip())
    lines.append(
        "the floor against the same goals: "
        f"{ratios['floor_vs_celery_email']:.2f}x celery-email, {ratios['floor_vs_post_office_batch']:.2f}x "
        f"post-office batches, {ratios['floor_vs_noop']:.2f}x the no-op (bench/support/floor_task.py)"
    )
    return "\n".join(lines)


def table(report: dict) -> str:
    env, raw, real, lat = report["environment"], report["raw_celery"], report["pipeline"], report["latency"]
    blat = report["latency_under_backlog"]
    backlog_met = blat["p99"] < TARGET_P99_UNDER_BACKLOG and blat["reminders_still_queued_after_last_loan"] > 0
    before, after = real["memory_before"], real["memory_after"]
    ratio = report["ratio"]
    rows = [
        ("machine", f"{env['cores']} cores, load {env['load_average']:.2f}", ""),
        (
            "versions",
            f"Python {env['python']}, Django {env['django']}, Celery {env['celery']}, kombu {env['kombu']}",
            "",
        ),
        ("", f"{env['database']}, Redis {env['redis']}", ""),
        ("worker", f"prefork x{concurrency()}, prefetch 1, acks_late", ""),
        (
            "(a) raw Celery no-op",
            f"{raw['tasks']} tasks in {raw['seconds']:.1f} s = {raw['rate']:.0f}/s",
            f"worker CPU {raw['worker_cpu_ms_per_task']:.2f} ms/task",
        ),
        (
            "(b) real pipeline",
            (
                f"{real['notifications']} sends in {real['seconds']:.1f} s = {real['rate']:.0f}/s "
                f"({real['emails']} email, {real['whatsapp']} WhatsApp)"
            ),
            ("all ENVOYEE, each once" if real["verified"] else "VERIFICATION FAILED")
            + f"; worker CPU {real['worker_cpu_ms_per_task']:.2f} ms/task",
        ),
        (
            "(b) per send",
            f"{real['database_transactions_per_send']:.1f} database transactions",
            f"{real['smtp_sessions']} SMTP sessions, {real['twilio_connections']} Twilio connections in all",
        ),
        ("ratio (b)/(a)", f"{ratio:.2f}", f"target >= {TARGET_RATIO} {'ok' if ratio >= TARGET_RATIO else 'MISSED'}"),
        (
            "latency commit -> SMTP",
            (
                f"p50 {lat['p50'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms, p99 {lat['p99'] * 1000:.0f} ms "
                f"(max {lat['max'] * 1000:.0f} ms, {lat['loans']} loans)"
            ),
            f"target p99 < {TARGET_P99:.0f} s {'ok' if lat['p99'] < TARGET_P99 else 'MISSED'}",
        ),
        (
            "latency under backlog",
            (
                f"p50 {blat['p50'] * 1000:.0f} ms, p95 {blat['p95'] * 1000:.0f} ms, p99 {blat['p99'] * 1000:.0f} ms "
                f"(max {blat['max'] * 1000:.0f} ms, {blat['loans']} loans; {blat['backlog']} reminders, "
                f"{blat['reminders_still_queued_after_last_loan']} still queued after the last loan)"
            ),
            f"target p99 < {TARGET_P99_UNDER_BACKLOG:.0f} s {'ok' if backlog_met else 'MISSED'}",
        ),
        (
            "worker RSS before",
            (
                f"{before['total_mib']:.0f} MiB (main {before['main_mib']:.0f}, children "
                f"{', '.join(f'{v:.0f}' for v in before['children_mib'])}); PSS {before['total_pss_mib']:.0f} MiB"
            ),
            "idle, after start",
        ),
        (
            "worker RSS after",
            (
                f"{after['total_mib']:.0f} MiB (main {after['main_mib']:.0f}, children "
                f"{', '.join(f'{v:.0f}' for v in after['children_mib'])}); PSS {after['total_pss_mib']:.0f} MiB"
            ),
            f"after {real['notifications']} sends",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'measure':<{width}}  {'result':<{value_width}}  note", "-" * (width + value_width + 30)]
    lines += [f"{name:<{width}}  {value:<{value_width}}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


# Our pipeline again in the same round with one of this branch's send optimisations turned off (all, for
# "before"), through their settings: each one's effect measured in the same conditions.
VARIANTS = {
    "email_pipeline_before": {
        "DB_HEALTH_CHECK_INTERVAL": "0",
        "EMAIL_NOOP_AFTER_IDLE": "0",
        "DB_PREPARED_STATEMENTS": "0",
    },
    "email_pipeline_no_prepared_statements": {"DB_PREPARED_STATEMENTS": "0"},
    "email_pipeline_health_check_every_task": {"DB_HEALTH_CHECK_INTERVAL": "0"},
    "email_pipeline_noop_every_message": {"EMAIL_NOOP_AFTER_IDLE": "0"},
}
VARIANT_NAMES = {
    "email_pipeline_before": "  ours before (all three below off)",
    "email_pipeline_no_prepared_statements": "  ours, DB_PREPARED_STATEMENTS=0",
    "email_pipeline_health_check_every_task": "  ours, DB_HEALTH_CHECK_INTERVAL=0",
    "email_pipeline_noop_every_message": "  ours, EMAIL_NOOP_AFTER_IDLE=0",
}


def throughput_rounds(servers, broker, n: int, rounds: int, message_path: Path, *, variants: bool) -> dict:
    """The email runs side by side, ``rounds`` times in turn (no-op, ours, the floor, each peer): every rate and the medians."""
    runs: dict[str, list[dict]] = {"raw_celery": [], "email_pipeline": [], "floor": [], **{mode: [] for mode in PEERS}}
    if variants:
        runs.update({name: [] for name in VARIANTS})
    for index in range(rounds):
        print(f"== round {index + 1}/{rounds}: {n} no-op tasks, {n} of our emails, {n} emails per peer", flush=True)
        runs["raw_celery"].append(raw_celery(servers.stack, broker, n))
        steps: list[tuple[str, dict[str, str] | None]] = [
            ("ours", None),
            ("floor", None),
            *((mode, None) for mode in PEERS),
        ]
        if variants:
            steps += VARIANTS.items()
        if index % 2:
            steps.reverse()  # every other round the other way round: a load that drifts favours no one
        for step, overrides in steps:
            if step == "ours":
                result, proc = real_pipeline(servers.stack, broker, n, whatsapp_share=0, name=f"email{index}")
                proc.stop()
                runs["email_pipeline"].append(result)
            elif step == "floor":
                result, proc = real_pipeline(
                    servers.stack, broker, n, whatsapp_share=0, name=f"floor{index}", task=FLOOR_TASK
                )
                proc.stop()
                runs["floor"].append(result)
            elif step in PEERS:
                runs[step].append(peer_run(servers.stack, step, n, message_path))
            else:
                saved = servers.stack.settings
                servers.stack.settings = {**saved, **(overrides or {})}
                try:
                    result, proc = real_pipeline(
                        servers.stack, broker, n, whatsapp_share=0, name=f"v{index}{step[15:22]}"
                    )
                finally:
                    servers.stack.settings = saved
                proc.stop()
                runs[step].append(result)
        print(
            "   " + ", ".join(f"{name} {entries[-1]['rate']:.0f}/s" for name, entries in runs.items()),
            flush=True,
        )
    medians = {name: statistics.median(entry["rate"] for entry in entries) for name, entries in runs.items()}
    ours = medians["email_pipeline"]
    return {
        "rounds": rounds,
        "rates": {name: [round(entry["rate"], 1) for entry in entries] for name, entries in runs.items()},
        "median_rates": {name: round(rate, 1) for name, rate in medians.items()},
        "ratios": {
            **{f"email_pipeline_vs_{name}": ours / medians[name] for name in VARIANTS if name in medians},
            "email_pipeline_vs_celery_email": ours / medians["celery-email"],
            "email_pipeline_vs_post_office_batch": ours / medians["post-office-batch"],
            "email_pipeline_vs_post_office_task": ours / medians["post-office-task"],
            "email_pipeline_vs_noop": ours / medians["raw_celery"],
            "email_pipeline_vs_floor": ours / medians["floor"],
            "floor_vs_celery_email": medians["floor"] / medians["celery-email"],
            "floor_vs_post_office_batch": medians["floor"] / medians["post-office-batch"],
            "floor_vs_noop": medians["floor"] / medians["raw_celery"],
        },
        "verified": all(
            entry["verified"] for name, entries in runs.items() if name != "raw_celery" for entry in entries
        ),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="N = 10,000 notifications and 1,000 loans")
    parser.add_argument("--rounds", type=int, default=1, help="email runs side by side this many times (medians)")
    parser.add_argument("--throughput-only", action="store_true", help="only the email runs side by side")
    parser.add_argument("--notifications", type=int, help="N for every throughput run (default: the size's)")
    parser.add_argument(
        "--variants", action="store_true", help="also our pipeline with each send optimisation off (before/after)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help="pool processes of every worker in the run (ours and peers')",
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "delivery.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (process logs) afterwards")
    args = parser.parse_args()
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    sizes = LARGE if args.large else QUICK
    ensure_peer_packages()

    try:
        with throwaway_stack("delivery", keep=args.keep) as servers:
            servers.stack.use_here()
            import django

            django.setup()
            import redis
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            environment = bench_report.environment()
            bench_report.print_environment(environment)
            broker = redis.Redis.from_url(servers.redis.url)

            n = args.notifications or sizes["notifications"]
            message_path = servers.stack.workdir / "peer-message.json"
            sample_message(plan_notifications(1, serial="SAMPLE", whatsapp_share=0)[0], message_path)
            servers.stack.settings["BENCH_SAMPLE_MESSAGE"] = str(message_path)  # the floor's message
            emails = throughput_rounds(servers, broker, n, args.rounds, message_path, variants=args.variants)
            report = {
                "environment": environment,
                "sizes": {**sizes, "notifications": n},
                "worker": {
                    "pool": "prefork",
                    "concurrency": concurrency(),
                    "prefetch_multiplier": 1,
                    "acks_late": True,
                },
                "emails_side_by_side": emails,
            }
            if not args.throughput_only:
                print(f"== (a) raw Celery: {n} no-op tasks", flush=True)
                raw = raw_celery(servers.stack, broker, n)
                print(f"   {raw['rate']:.0f} tasks/s", flush=True)
                print(f"== (b) real pipeline: {n} notifications", flush=True)
                real, worker = real_pipeline(servers.stack, broker, n)
                print(f"   {real['rate']:.0f} sends/s", flush=True)
                print(f"== latency: {sizes['loans']} loans lent one after another", flush=True)
                latencies = lend_latencies(servers.stack, sizes["loans"])
                # The last email is accepted a moment before its task records it and acks: let it finish.
                drain_seconds(broker, lambda: None, started=time.monotonic(), timeout=60)
                latency = {"loans": len(latencies), **summary(latencies)}
                print(f"== latency under backlog: {sizes['backlog']} reminders draining", flush=True)
                under_backlog = lend_latencies_under_backlog(
                    servers.stack, broker, sizes["backlog_loans"], sizes["backlog"]
                )
                report.update(
                    raw_celery=raw,
                    pipeline=real,
                    ratio=real["rate"] / raw["rate"],
                    latency=latency,
                    latency_under_backlog=under_backlog,
                )
                worker.stop()
            report["environment"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    except StackError as exc:
        print(f"delivery bench: {exc}", file=sys.stderr)
        return 1

    print()
    print(emails_table(report))
    if "pipeline" in report:
        print()
        print(table(report))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    problems = [] if emails["verified"] else ["a run side by side did not deliver every email once"]
    problems += report.get("pipeline", {}).get("problems", [])
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
