"""Drills on faults between machines (issue 12): Redis away while retries wait, shifted worker clocks,
a mail server that answers late, beat away. Production timings where the fault is about timing."""

from __future__ import annotations

import time
from contextlib import contextmanager

from bench.faults.lab import RELAY_EVERY_SECONDS, Lab, drill
from bench.stack import wait_until
from radgestmat import queues

# The product's defaults (radgestmat/settings.py), for drills whose fault is about timing.
PRODUCTION_TIMINGS = {
    "NOTIFICATION_RETRY_BASE_DELAY": "60",
    "NOTIFICATION_RETRY_MAX_DELAY": "900",
    "CELERY_TASK_SOFT_TIME_LIMIT": "60",
    "CELERY_TASK_TIME_LIMIT": "90",
    "RELAY_REDELIVER_MINUTES": "5",
    "EMAIL_TIMEOUT": "15",
}


@contextmanager
def relay_every(seconds: int):
    """The relay's beat entry at ``seconds`` (production: 60 s) for one drill, then back to the drills' cadence."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    def set_every(every: int) -> None:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.filter(name="dispatch_due_notifications").update(interval=interval)
        PeriodicTasks.update_changed()

    set_every(seconds)
    try:
        yield
    finally:
        set_every(RELAY_EVERY_SECONDS)


def lateness(root_ids: list[int]) -> dict:
    """How late the rows were sent after their scheduled time (seconds): max and p50."""
    from notifications.models import NotificationLog, Statut

    late = sorted(
        (row.date_envoi - row.date_scheduled).total_seconds()
        for row in NotificationLog.objects.filter(pk__in=root_ids, statut=Statut.ENVOYEE)
    )
    if not late:
        return {"late_max_s": None, "late_p50_s": None}
    return {"late_max_s": round(late[-1], 1), "late_p50_s": round(late[len(late) // 2], 1)}


@drill("redis-down-retries", "Redis down 60 s while 100 emails wait for their retry (production timings)", quick=False)
def redis_down_with_retries_pending(lab: Lab) -> dict:
    """The mail server refuses connections, so 100 emails fail once and wait for their retry (60-90 s,
    held by the worker as countdown messages). Redis then goes away for 60 s, and 50 loans are lent
    meanwhile (their publish fails). The worker must survive or be restarted, and everything go out."""
    stack = lab.stack
    stack.settings.update(PRODUCTION_TIMINGS)
    with relay_every(60):
        stack.smtp.down()
        stack.beat()
        worker = stack.worker("w1", concurrency=2)
        started = time.monotonic()
        root_ids = lab.lend(100, with_phone=0)
        wait_until(
            lambda: _failed_once(root_ids) >= 100, what="100 emails to fail once and wait for their retry", timeout=120
        )
        stack.smtp.up()
        lab.redis.stop()
        down_at = time.monotonic()
        root_ids += lab.lend(50, with_phone=0)  # lent while Redis is down: their publish fails
        time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        lab.redis.start()
        # Redis comes back empty: the retries it held are lost, and the relay sends them LOST_RETRY_AFTER
        # (5 min) after their retry time.
        result = lab.settle(root_ids, started, timeout=900)
        result["worker_alive_after"] = worker.alive()
        result.update(lateness(root_ids[100:]))
        result["notes"] = (
            f"worker {'alive' if worker.alive() else 'EXITED'} after the outage; "
            f"loans lent during it sent {result['late_p50_s']} s (p50) / {result['late_max_s']} s (max) after lending"
        )
    return result


def _failed_once(root_ids: list[int]) -> int:
    from notifications.models import NotificationLog, Statut

    return NotificationLog.objects.filter(pk__in=root_ids, statut=Statut.ECHEC).count()


SHIFT_SECONDS = 180


def clock_shift_library(workdir) -> str:
    """bench/support/clockshift.c compiled for this run (an LD_PRELOAD that moves the wall clock only)."""
    import subprocess
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "support" / "clockshift.c"
    library = Path(workdir) / "clockshift.so"
    if not library.exists():
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], check=True)
    return str(library)


def shifted_worker(stack, name: str, shift: int, **options):
    saved = stack.settings
    stack.settings = {**saved, "LD_PRELOAD": clock_shift_library(stack.workdir), "CLOCK_SHIFT_SECONDS": str(shift)}
    try:
        return stack.worker(name, **options)
    finally:
        stack.settings = saved


def reminder_rows(creation_ids: list[int]) -> list[int]:
    from notifications.models import NotificationLog, TypeNotification

    loans = NotificationLog.objects.filter(pk__in=creation_ids).values_list("attribution_id", flat=True)
    return list(
        NotificationLog.objects.filter(
            attribution_id__in=list(loans), type_notification=TypeNotification.RAPPEL_2H
        ).values_list("pk", flat=True)
    )


def timing(row_ids: list[int]) -> dict:
    """Sent minus scheduled (seconds, by the database's clock): earliest, p50, latest."""
    from notifications.models import NotificationLog, Statut

    offsets = sorted(
        (row.date_envoi - row.date_scheduled).total_seconds()
        for row in NotificationLog.objects.filter(pk__in=row_ids, statut=Statut.ENVOYEE)
    )
    if not offsets:
        return {"sent": 0}
    return {
        "sent": len(offsets),
        "earliest_s": round(offsets[0], 1),
        "p50_s": round(offsets[len(offsets) // 2], 1),
        "latest_s": round(offsets[-1], 1),
    }


@drill("worker-clocks-skewed", "The only default worker 3 min ahead, a notifications worker 3 min behind", quick=False)
def worker_clocks_skewed(lab: Lab) -> dict:
    """Workers' wall clocks shifted by an LD_PRELOAD (bench/support/clockshift.c); beat, PostgreSQL and
    the drill keep the real time. The ahead worker alone runs the relay and the checks (default queue);
    both send. 75 short loans have their "2 h before" reminder 60 s after lending: each must go out
    between 0 and 120 s after its time, by the database's clock."""
    stack = lab.stack
    stack.beat()
    shifted_worker(stack, "ahead", SHIFT_SECONDS, concurrency=2, queues=queues.WORKER_QUEUES)
    shifted_worker(stack, "behind", -SHIFT_SECONDS, concurrency=2, queues="notifications")
    started = time.monotonic()
    from datetime import timedelta

    # Email only: the ledger matches WhatsApp messages by phone, and these borrowers get two each.
    creation_ids = lab.lend(75, with_phone=0, due_in=timedelta(hours=2, seconds=60))
    reminders = reminder_rows(creation_ids)
    result = lab.settle(creation_ids + reminders, started)
    result["reminders"] = timing(reminders)
    reminder = result["reminders"]
    problems = result.setdefault("problems", [])
    if reminder.get("sent", 0) != len(reminders):
        problems.append(f"{len(reminders) - reminder.get('sent', 0)} of {len(reminders)} reminders not sent")
    elif reminder["earliest_s"] < 0 or reminder["latest_s"] > 120:
        problems.append(f"reminders sent {reminder['earliest_s']}..{reminder['latest_s']} s from their time")
    result["notes"] = (
        f"{len(reminders)} reminders sent {reminder.get('earliest_s')}..{reminder.get('latest_s')} s "
        f"(p50 {reminder.get('p50_s')} s) after their time"
    )
    return result


@drill("smtp-late-250", "The mail server answers each message 8 s after its end (EMAIL_TIMEOUT 5 s)", quick=False)
def smtp_answers_late(lab: Lab) -> dict:
    """Every "250" comes 8 s after the final "." of the message, past the 5 s command timeout: the
    client must wait for it (RFC 5321 gives it 10 min) instead of resending. 40 emails, 4 workers."""
    stack = lab.stack
    stack.settings.update({"CELERY_TASK_SOFT_TIME_LIMIT": "60", "CELERY_TASK_TIME_LIMIT": "90", "EMAIL_TIMEOUT": "5"})
    stack.smtp.delay = 8.0
    try:
        stack.beat()
        stack.worker("w1", concurrency=4)
        started = time.monotonic()
        root_ids = lab.lend(40, with_phone=0)
        result = lab.settle(root_ids, started)
    finally:
        stack.smtp.delay = 0.0
    result["notes"] = "250 after 8 s; EMAIL_TIMEOUT 5 s"
    return result


@drill("beat-killed-5min", "Beat killed for 5 minutes while reminders fall due", quick=False)
def beat_killed(lab: Lab) -> dict:
    """Beat dies right after 50 short loans are lent; their "2 h before" reminders fall due 60 s later,
    inside the 5 minutes beat stays away. The workers' relay watchdog must send them within 2 minutes."""
    from datetime import timedelta

    stack = lab.stack
    beat = stack.beat()
    stack.worker("w1", concurrency=2)
    started = time.monotonic()
    creation_ids = lab.lend(50, with_phone=0, due_in=timedelta(hours=2, seconds=60))  # email only, as above
    reminders = reminder_rows(creation_ids)
    beat.kill()
    killed_at = time.monotonic()
    wait_until(
        lambda: time.monotonic() - killed_at > 300 or _all_final(creation_ids + reminders),
        what="beat's absence",
        timeout=320,
    )
    settled_without_beat = _all_final(creation_ids + reminders)
    time.sleep(max(0.0, 300 - (time.monotonic() - killed_at)))
    stack.beat()
    result = lab.settle(creation_ids + reminders, started)
    result["reminders"] = timing(reminders)
    reminder = result["reminders"]
    problems = result.setdefault("problems", [])
    if not settled_without_beat:
        problems.append("the notifications did not all go out while beat was away")
    if reminder.get("sent", 0) != len(reminders) or reminder.get("latest_s", 0) > 120:
        problems.append(f"reminders: {reminder}")
    result["notes"] = (
        f"{len(reminders)} reminders due during beat's absence sent {reminder.get('earliest_s')}.."
        f"{reminder.get('latest_s')} s after their time, by the workers' relay watchdog"
    )
    return result


def _all_final(row_ids: list[int]) -> bool:
    from notifications.models import FINAL_STATUTS, NotificationLog

    return not NotificationLog.objects.filter(pk__in=row_ids).exclude(statut__in=FINAL_STATUTS).exists()
