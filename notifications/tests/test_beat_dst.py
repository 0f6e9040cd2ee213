"""The stored beat entries under django-celery-beat's own scheduler, through the DST nights of 2026 and 2027.

GIVEN the entries `setup_schedule` registers,
WHEN celery beat's loop over them (DatabaseScheduler, ModelEntry.is_due) runs from the evening before a
change of clocks to the next afternoon (tasks recorded, not run),
THEN the relay is never more than 70 s apart, the short, overdue and alert checks keep their cadence in
real time through the night, and the jobs at a local hour run once that day, at that local hour.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter

import pytest
from django_celery_beat.models import PeriodicTask

from notifications.schedule import register_schedule

from . import test_simulated_week as simulated_week
from .beat import PARIS, SchedulerBeat, Sent, paris
from .test_simulated_week import twilio_accepting_everything  # noqa: F401  (fixture)

# The nights the clocks change in Europe/Paris: forward at 02:00, back at 03:00.
DST_NIGHTS = [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31)]
RELAY_MAX_GAP = timedelta(seconds=70)
CADENCES = {
    "check_court_terme_reminders": timedelta(minutes=30),
    "check_overdue_materials": timedelta(minutes=15),
    "check_notification_alerts": timedelta(minutes=5),
}
# (job, local hour, minute) runs expected on the day of the change.
LOCAL_RUNS = {
    "check_moyen_terme_reminders": [time(0, 0), time(12, 0)],
    "cleanup_old_notifications": [time(2, 0)],
    "check_long_terme_reminders": [time(8, 0)],
}


def dst_summary(runs: dict[str, list[datetime]], start: datetime, end: datetime, night: date) -> str:
    """One line for docs/timing.md's table: the longest real-time gap of each sub-hourly job, the local jobs' runs."""
    parts = []
    for name in ["dispatch_due_notifications", *CADENCES]:
        moments = [start, *runs[name], end] if name == "dispatch_due_notifications" else runs[name]
        longest = max(later - earlier for earlier, later in zip(moments, moments[1:], strict=False))
        parts.append(f"{name} max gap {longest.total_seconds():.2f} s")
    for name in LOCAL_RUNS:
        parts.append(f"{name} at " + ", ".join(f"{moment:%H:%M:%S%z}" for moment in local_runs_on(night, runs[name])))
    return "; ".join(parts)


def longest_gap(moments: list[datetime]) -> tuple[timedelta, datetime]:
    """The longest time between two consecutive ``moments``, and when it began."""
    return max((later - earlier, earlier) for earlier, later in zip(moments, moments[1:], strict=False))


def real_time(start: datetime, end: datetime) -> timedelta:
    return end.astimezone(UTC) - start.astimezone(UTC)


def local_runs_on(day: date, moments: list[datetime]) -> list[datetime]:
    return [moment.astimezone(PARIS) for moment in moments if moment.astimezone(PARIS).date() == day]


@pytest.mark.django_db
@pytest.mark.parametrize("night", DST_NIGHTS, ids=str)
def test_beat_never_pauses_and_runs_the_local_jobs_once_at_a_dst_change(night):
    start = datetime.combine(night - timedelta(days=1), time(23, 30), tzinfo=PARIS)
    end = datetime.combine(night, time(12, 30), tzinfo=PARIS)
    beat = SchedulerBeat(start, run_tasks=False)
    try:
        register_schedule()
        beat.run_until(end)
    finally:
        beat.stop()
    runs = beat.runs
    print(f"\nDST {night}: " + dst_summary(runs, start, end, night))  # noqa: T201  (the table docs/timing.md quotes, shown with -s)

    longest, since = longest_gap([start, *runs["dispatch_due_notifications"], end])
    assert longest <= RELAY_MAX_GAP, f"the relay paused {longest} from {since.astimezone(PARIS)}"
    for name, cadence in CADENCES.items():
        moments = runs[name]
        longest, since = longest_gap(moments)
        assert longest <= cadence + timedelta(seconds=1), f"{name} paused {longest} from {since.astimezone(PARIS)}"
        assert len(moments) >= real_time(start, end) / cadence - 1, name
    for name, wall_times in LOCAL_RUNS.items():
        on_the_day = local_runs_on(night, runs[name])
        expected = [datetime.combine(night, wall, tzinfo=PARIS) for wall in wall_times]
        if night.month == 3 and name == "cleanup_old_notifications":
            expected = [datetime.combine(night, time(3, 0), tzinfo=PARIS)]  # 02:00 does not exist that night
        assert [moment.replace(microsecond=0) for moment in on_the_day] == expected, name


# --- A week of lending under the real beat, across each change of clocks ------------------------

WEEK_LOANS = int(os.environ.get("SIM_BEAT_LOANS", "300"))
# Hours of real time simulated, from 22:00 the evening before the night: a whole week by default (docs/timing.md
# gives each night's run time); SIM_BEAT_HOURS=6 runs only the night, through the change of clocks.
WEEK_HOURS = float(os.environ.get("SIM_BEAT_HOURS", str(7 * 24)))
ADMIN = "ops@example.org"


def nights_for_this_database() -> list[date]:
    """CI runs the suite on SQLite, then on PostgreSQL: the 2026 weeks run in the first pass and the 2027 weeks
    in the second, so one CI run covers the four nights (a spring and an autumn change on each database) for
    half the time of all four twice. SIM_BEAT_NIGHTS=all runs all four on this database."""
    from django.conf import settings

    if os.environ.get("SIM_BEAT_NIGHTS") == "all":
        return DST_NIGHTS
    year = 2027 if "postgresql" in settings.DATABASES["default"]["ENGINE"] else 2026
    return [night for night in DST_NIGHTS if night.year == year]


@pytest.fixture
def commits_not_flushed():
    """Commits of this connection not waited to reach the disk: a week commits some 50,000 times, and durability
    is not what is tested. Per session, so nothing else changes."""
    from django.db import connection

    statement = {"sqlite": "PRAGMA synchronous = OFF", "postgresql": "SET synchronous_commit = off"}[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(statement)


def week_around(night: date) -> tuple[datetime, datetime]:
    """From 22:00 the evening before ``night``, ``WEEK_HOURS`` of real time."""
    start = datetime.combine(night - timedelta(days=1), time(22, 0), tzinfo=PARIS)
    # The end in UTC: the oracle subtracts its 2-minute window from it, and on a Paris datetime just after
    # the autumn change that wall-clock subtraction would land an hour early.
    return start, start.astimezone(UTC) + timedelta(hours=WEEK_HOURS)


# About 3 minutes of CPU per night; on this machine under the other engineers' load a night took 6-28 min (docs/timing.md).
@pytest.mark.timeout(2400)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("night", nights_for_this_database(), ids=str)
def test_a_week_under_the_real_beat_keeps_the_timing_promise(
    night,
    settings,
    commits_not_flushed,
    twilio_accepting_everything,  # noqa: F811  (pytest fixture)
    mailoutbox,
):
    """GIVEN the entries `setup_schedule` registers and a few hundred random loans (short, medium, long; some
    extended, some returned early or late) over the week of a DST change,
    WHEN celery beat's own loop (DatabaseScheduler) decides when each periodic task runs, in-process,
    THEN the oracle of test_simulated_week finds every notification within 2 minutes of its ideal time, none
    twice, none after a return, no pre-due reminder after its due time; the relay is never more than 70 s apart;
    the admins get no "beat stopped" alert and /healthz's beat check never goes stale."""
    from django.core.cache import cache

    from notifications.alerts import INCIDENT_KEYS, incident_cache_key
    from radgestmat import health

    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    settings.OVERDUE_GRACE_MINUTES, settings.OVERDUE_REPEAT_HOURS, settings.OVERDUE_MAX_LEVELS = 15, 24, 3
    settings.QUIET_HOURS = {"WHATSAPP": "21:00-08:00", "SMS": "21:00-08:00", "EMAIL": ""}
    settings.ADMINS = [("Ops", ADMIN)]
    cache.delete_many([incident_cache_key(key) for key in INCIDENT_KEYS])
    week_start, week_end = week_around(night)
    loans = simulated_week.random_loans(
        random.Random(night.toordinal()), week_start, WEEK_LOANS, week_end, real_time(week_start, week_end) / 2
    )
    stale_readings = []

    def read_beat_health(name: str, now: datetime) -> None:
        if name == "check_notification_alerts":
            last = health.beat_last_tick(now)
            if last is None or now - last > timedelta(minutes=settings.BEAT_STALE_AFTER_MINUTES):
                stale_readings.append((now, last))

    beat = SchedulerBeat(week_start, after_run=read_beat_health)
    began = perf_counter()
    try:
        register_schedule()
        simulated_week.live_the_week(beat, loans)
        beat.run_until(week_end)
    finally:
        beat.stop()
    run_time = perf_counter() - began

    assert beat.scheduler.failures == []
    problems = simulated_week.promise_problems(loans, beat.sent, week_end)
    assert not problems, (
        "\n".join(problems[:40])
        + f"\n({len(problems)} problems)\n"
        + "\n".join(repr(loan) for loan in loans if any(f"({loan.pk}, " in problem for problem in problems))
    )
    longest, since = longest_gap([week_start, *beat.runs["dispatch_due_notifications"], week_end])
    admin_mails = [message for message in mailoutbox if ADMIN in message.to]
    latest, extras = simulated_week.lateness_and_extras(loans, beat.sent, week_end)
    message_ids = [
        message.extra_headers["Message-ID"] for message in mailoutbox if "Message-ID" in message.extra_headers
    ]
    extras += len(message_ids) - len(set(message_ids))
    # The row docs/timing.md quotes (shown with -s).
    print(  # noqa: T201
        f"\nDST week {night}: {len(loans)} loans, {len(beat.sent)} notifications, max lateness "
        f"{latest.total_seconds():.0f} s, {extras} duplicates, relay max gap {longest.total_seconds():.2f} s, "
        f"{len(admin_mails)} beat alerts, {beat.passes} beat passes, run {run_time:.0f} s"
    )
    assert latest <= simulated_week.WINDOW and extras == 0, (latest, extras)
    assert longest <= RELAY_MAX_GAP, f"the relay paused {longest} from {since.astimezone(PARIS)}"
    assert len(beat.runs["check_notification_alerts"]) >= real_time(week_start, week_end) / timedelta(minutes=5) - 1
    assert stale_readings == []
    assert admin_mails == [], [message.subject for message in admin_mails]
    if WEEK_HOURS >= 7 * 24:
        simulated_week.assert_every_kind_went_out(beat.sent, mailoutbox, twilio_accepting_everything)
    else:  # a night: no level-2 alert (a day late) yet, no 08:00 reminder, WhatsApp reminders wait for 08:00
        kinds = {(row.type_notification, row.canal) for row in beat.sent}
        for kind in ("CREATION", "RAPPEL_2H", "RETARD", "RESTITUTION"):
            assert (kind, "EMAIL") in kinds, kind
        assert len(mailoutbox) == sum(1 for row in beat.sent if row.canal == "EMAIL")
        assert len(twilio_accepting_everything.log) == sum(1 for row in beat.sent if row.canal == "WHATSAPP")


@pytest.mark.django_db
def test_skipping_idle_passes_changes_no_decision_of_beat():
    """The helper skips beat's passes that can do nothing; across the autumn change (the hour beat's naive
    clock runs backwards), running every pass instead sends the same tasks at the same instants."""
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    end = start + timedelta(hours=1)  # 02:30 CET
    runs = []
    for skip in (False, True):
        beat = SchedulerBeat(start, run_tasks=False, skip_idle_passes=skip)
        try:
            PeriodicTask.objects.all().delete()
            register_schedule()
            beat.run_until(end)
        finally:
            beat.stop()
        runs.append(({name: list(moments) for name, moments in beat.runs.items()}, beat.idle_passes_skipped))
    (every_pass, none_skipped), (skipping, skipped) = runs
    assert every_pass.keys() == skipping.keys()
    for name, moments in every_pass.items():
        moments = [moment for moment in moments if moment < end - timedelta(seconds=1)]
        skipping[name] = [moment for moment in skipping[name] if moment < end - timedelta(seconds=1)]
        # The same runs; the instants may differ by a few of the 10 ms each pass costs (fewer passes, fewer costs).
        assert len(moments) == len(skipping[name]), name
        assert all(abs(a - b) < timedelta(seconds=0.1) for a, b in zip(moments, skipping[name], strict=False)), name
    assert len(every_pass["dispatch_due_notifications"]) >= 59
    assert none_skipped == 0 and skipped > 0


# --- The checks above can fail ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_oracle_catches_a_late_a_repeated_an_after_due_and_an_after_return_send():
    """GIVEN a 3-hour loan and its sends each 30 s after its ideal time (the oracle finds nothing),
    WHEN one reminder leaves 3 minutes late, or twice, or after the due time, or an alert after the return,
    THEN the week's checks (`promise_problems`, `lateness_and_extras`) report it."""
    start = paris(2026, 10, 26, 10, 0)
    week_end = start + timedelta(days=2)

    def loan(**fate) -> simulated_week.Loan:
        return simulated_week.Loan(start=start, due=start + timedelta(hours=3), has_phone=False, pk=10**9, **fate)

    def sent(key: tuple, at: datetime) -> Sent:
        pk, kind, canal, audience, level = key
        return Sent(len(str(key)), pk, kind, canal, audience, level, date_scheduled=at, date_envoi=at)

    ideal = {item.key: item.ideal for item in simulated_week.expectations(loan(), week_end) if not item.optional}
    reminder = next(key for key in ideal if key[1] == "RAPPEL_2H")
    alert = next(key for key in ideal if key[1] == "RETARD")
    on_time = {key: sent(key, at + timedelta(seconds=30)) for key, at in ideal.items()}
    assert simulated_week.promise_problems([loan()], list(on_time.values()), week_end) == []
    assert simulated_week.lateness_and_extras([loan()], list(on_time.values()), week_end) == (timedelta(seconds=30), 0)

    late = {**on_time, reminder: sent(reminder, ideal[reminder] + timedelta(minutes=3))}
    problems = simulated_week.promise_problems([loan()], list(late.values()), week_end)
    assert any("not expected then" in problem for problem in problems)
    assert any("never sent" in problem for problem in problems)
    assert simulated_week.lateness_and_extras([loan()], list(late.values()), week_end)[0] == timedelta(minutes=3)

    twice = [*on_time.values(), sent(reminder, ideal[reminder] + timedelta(seconds=40))]
    assert any("not expected then" in problem for problem in simulated_week.promise_problems([loan()], twice, week_end))
    assert simulated_week.lateness_and_extras([loan()], twice, week_end)[1] == 1

    after_due = {**on_time, reminder: sent(reminder, start + timedelta(hours=3, minutes=1))}
    assert simulated_week.promise_problems([loan()], list(after_due.values()), week_end) != []

    returned = start + timedelta(hours=2, minutes=30)
    after_return = [*on_time.values(), sent(alert, ideal[alert])]
    problems = simulated_week.promise_problems([loan(returned=returned)], after_return, week_end)
    assert any("sent after the return" in problem for problem in problems)


@pytest.mark.django_db
def test_the_relay_gap_check_sees_the_hour_a_local_crontab_loses_in_october():
    """GIVEN the relay's entry as it was before issue 12 (every minute, a crontab in Europe/Paris),
    WHEN the same beat runs through the autumn change,
    THEN the longest gap is about an hour (celery#6438): the helper and the 70 s check can see a pause."""
    from django_celery_beat.models import CrontabSchedule

    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30 CEST
    end = datetime(2026, 10, 25, 2, 30, tzinfo=UTC)  # 03:30 CET
    beat = SchedulerBeat(start, run_tasks=False)
    try:
        register_schedule()
        local, _ = CrontabSchedule.objects.get_or_create(minute="*", hour="*", timezone="Europe/Paris")
        PeriodicTask.objects.filter(name="dispatch_due_notifications").update(crontab=local)
        beat.run_until(end)
    finally:
        beat.stop()
    longest, since = longest_gap([start, *beat.runs["dispatch_due_notifications"], end])
    assert longest > RELAY_MAX_GAP
    assert timedelta(minutes=59) <= longest <= timedelta(minutes=62), (longest, since)
