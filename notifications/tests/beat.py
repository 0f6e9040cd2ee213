"""A simulated beat for tests: moves the clock with time-machine and runs what beat would start.

The default cadences of the spec are written out again here on purpose, apart from
`notifications.schedule`, so the tests do not trust the code they check.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import time_machine
from django.utils import timezone
from django_celery_beat.models import PeriodicTasks
from django_celery_beat.schedulers import SCHEDULE_SYNC_MAX_INTERVAL, DatabaseScheduler

import tasks

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def checks_due_at(moment: datetime) -> list[Callable]:
    """The periodic tasks beat starts at ``moment`` (a whole minute), by the spec's default cadences."""
    local = moment.astimezone(PARIS)
    due = [tasks.dispatch_due_notifications]
    if local.minute % 30 == 0:
        due.append(tasks.check_court_terme_reminders)
    if local.minute == 0 and local.hour % 12 == 0:
        due.append(tasks.check_moyen_terme_reminders)
    if local.minute == 0 and local.hour == 8:
        due.append(tasks.check_long_terme_reminders)
    if local.minute % 15 == 0:
        due.append(tasks.check_overdue_materials)
    # The relay runs last in the minute, as it would a few ms after the checks on a real beat.
    return due[1:] + due[:1]


@dataclass(frozen=True)
class Sent:
    log_id: int
    attribution_id: int
    type_notification: str
    canal: str
    audience: str
    niveau_escalade: int
    date_scheduled: datetime
    date_envoi: datetime


class Beat:
    """Moves a frozen clock (time-machine) from tick to tick and runs the periodic tasks due at each.

    After every step it records the rows sent during it (the clock does not move within
    a step, so they are the rows with ``date_envoi == now``): a row re-armed later for a
    new due date keeps its earlier send in ``sent``.
    """

    def __init__(self, start: datetime):
        self.traveller = time_machine.travel(start, tick=False)
        self.clock = self.traveller.start()
        self.now = start
        self.sent: list[Sent] = []
        self._collected: set[tuple[int, datetime]] = set()

    def collect(self) -> None:
        from notifications.models import NotificationLog, Statut

        rows = NotificationLog.objects.filter(statut=Statut.ENVOYEE, date_envoi=timezone.now()).values_list(
            "id",
            "attribution_id",
            "type_notification",
            "canal",
            "audience",
            "niveau_escalade",
            "date_scheduled",
            "date_envoi",
        )
        # A staff action at the very second of a tick collects twice at one instant: count each send once.
        # (A real double send still shows: the mail outbox is compared with `sent` at the end.)
        fresh = [Sent(*row) for row in rows if (row[0], row[-1]) not in self._collected]
        self._collected.update((row.log_id, row.date_envoi) for row in fresh)
        self.sent.extend(fresh)

    def act(self, action: Callable, *args, **kwargs):
        """Do a staff action (lend, return, extend) now, and record what it sent at once."""
        result = action(*args, **kwargs)
        self.collect()
        return result

    def stop(self) -> None:
        self.traveller.stop()

    def move_to(self, moment: datetime) -> None:
        self.clock.move_to(moment)
        self.now = moment

    def run_until(self, end: datetime) -> None:
        """Run every beat tick after now up to ``end`` included, skipping minutes where nothing can happen.

        Checks run at their quarter-hours; the relay runs at each minute where a row is
        due. A relay run with nothing due does nothing, so skipping those runs changes no
        outcome — it only keeps a simulated week fast.
        """
        minute = self.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute <= end:
            self.move_to(minute)
            *checks, relay = checks_due_at(minute)
            for task in checks:
                task.apply(throw=True)
            if next_row_wakeup(minute - timedelta(minutes=1)) <= minute:
                relay.apply(throw=True)
            self.collect()
            minute = min(next_quarter(minute), next_row_wakeup(minute))
        if self.now < end:
            self.move_to(end)


def ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def next_quarter(moment: datetime) -> datetime:
    return moment + timedelta(minutes=15 - moment.minute % 15)


def next_row_wakeup(after: datetime) -> datetime:
    """The first minute after ``after`` at which the relay could find a row to enqueue."""
    from django.db.models import Min, Q

    from notifications.models import CLAIMABLE_STATUTS, NotificationLog

    bounds = NotificationLog.objects.filter(statut__in=CLAIMABLE_STATUTS).aggregate(
        scheduled=Min("date_scheduled", filter=Q(date_tentative_prochaine__isnull=True)),
        retry=Min("date_tentative_prochaine"),
    )
    candidates = [ceil_minute(moment) for moment in bounds.values() if moment is not None]
    later = [moment for moment in candidates if moment > after]
    # A row already due but held back (e.g. failed, waiting for its retry time) wakes us next minute.
    if any(moment <= after for moment in candidates):
        later.append(after + timedelta(minutes=1))
    return min(later, default=after + timedelta(days=365))


# --- The real scheduler ---------------------------------------------------------------------

# What one pass of beat's loop costs in simulated time. Beat's loop relies on time passing between
# two ticks: two entries due in the same instant would otherwise hand the top of the heap to each
# other forever.
TICK_COST = 0.010


class InProcessScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler over the stored entries, running each task in-process.

    Everything that decides *when* is django-celery-beat's and Celery's own (the heap, ``ModelEntry.is_due``,
    the 5-minute re-read of the table, ``sync``). Two changes only: a sent task runs at once in this
    process (eager) and is recorded; beat's every-3-minutes sync is timed on the simulated clock,
    since time-machine does not move ``time.monotonic``.
    """

    run_tasks = True  # False: record when each task would be sent, run nothing
    after_run: Callable[[str, datetime], None] | None = None  # called with (entry name, now) after each run
    skip_run: Callable[[str], bool] | None = None  # a run it says True for is recorded but not executed

    def __init__(self, *args, **kwargs):
        self.runs: dict[str, list[datetime]] = defaultdict(list)
        self.failures: list[str] = []
        self.ran_something = False
        super().__init__(*args, **kwargs)
        self.__dict__["producer"] = None  # eager tasks publish nothing

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        self.runs[entry.name].append(timezone.now())
        if not self.run_tasks or (self.skip_run is not None and self.skip_run(entry.name)):
            return None
        self.ran_something = True
        result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        if result is not None and result.failed():
            self.failures.append(f"{entry.name} at {timezone.now()}: {result.result!r}")
        if self.after_run is not None:
            self.after_run(entry.name, timezone.now())
        return result

    def should_sync(self) -> bool:
        return not self._last_sync or (time.time() - self._last_sync) > self.sync_every

    def _do_sync(self) -> None:
        try:
            self.sync()
        finally:
            self._last_sync = time.time()
            self._tasks_since_sync = 0


class SchedulerBeat(Beat):
    """Runs `celery beat`'s own loop (`celery.beat.Service.start`) on a time-machine clock.

    Each pass: ``tick()``; sleep what it returned (the clock moves instead); sync if due. Staff actions
    happen between passes at their own times, as they would while beat sleeps.

    To keep a week fast, passes that cannot do anything are skipped: a pass whose heap top is not due,
    whose schedule is not re-read (less than 5 minutes since the last full read; nothing edits the entries
    during a run, `stop` checks it) and after which no sync is due only returns how long to sleep.
    `idle_passes_skipped` counts them; test_beat_dst runs a DST night both ways and compares.
    """

    def __init__(
        self,
        start: datetime,
        *,
        skip_idle_passes: bool = True,
        run_tasks: bool = True,
        after_run: Callable[[str, datetime], None] | None = None,
    ):
        from radgestmat.celery import app

        super().__init__(start)
        self.app = app
        self._scheduler: InProcessScheduler | None = None
        self.skip_idle_passes = skip_idle_passes
        self.run_tasks = run_tasks
        self.after_run = after_run
        self._row_wakeup: datetime | None = None
        # Beat closes connections older than CONN_MAX_AGE at every pass, which on SQLite (0) reopens the file
        # several times a simulated second: it decides nothing and would cost most of a week's run time.
        self._keep_connection = mock.patch("django_celery_beat.schedulers.close_old_connections", lambda: None)
        self._keep_connection.start()
        self.wake_at = start.timestamp()
        self.passes = 0
        self.idle_passes_skipped = 0

    @property
    def scheduler(self) -> InProcessScheduler:
        """Beat starts at the first run, after the test registered the entries (as `setup_schedule` runs before beat)."""
        if self._scheduler is None:
            self._scheduler = InProcessScheduler(app=self.app)
            self._scheduler.run_tasks, self._scheduler.after_run = self.run_tasks, self.after_run
            self._scheduler.skip_run = self.relay_has_nothing_to_do
        return self._scheduler

    @property
    def runs(self) -> dict[str, list[datetime]]:
        return self.scheduler.runs

    def relay_has_nothing_to_do(self, name: str) -> bool:
        """A relay run before the first minute a row can be due does nothing (as in `Beat.run_until`): it is
        recorded (the scheduler decided it) but not executed. Any other run or staff action may add rows."""
        if name != "dispatch_due_notifications":
            self._row_wakeup = None
            return False
        if self._row_wakeup is None:
            self._row_wakeup = next_row_wakeup(self.now - timedelta(minutes=1))
        if self._row_wakeup > self.now:
            return True
        self._row_wakeup = None
        return False

    def act(self, action: Callable, *args, **kwargs):
        self._row_wakeup = None
        return super().act(action, *args, **kwargs)

    def stop(self) -> None:
        try:
            if self._scheduler is not None:
                self._scheduler._finalize.cancel()  # its exit-time sync would find the test database gone
                self._scheduler.sync()
                assert PeriodicTasks.last_change() == self._scheduler._last_timestamp, "entries edited mid-run"
        finally:
            self._keep_connection.stop()
            super().stop()

    def run_until(self, end: datetime) -> None:
        stop = end.timestamp()
        while self.wake_at <= stop:
            self.move_to(datetime.fromtimestamp(self.wake_at, tz=dt_timezone.utc))
            if self.scheduler.should_sync():
                self.scheduler._do_sync()
            self.scheduler.ran_something = False
            interval = self.scheduler.tick()
            self.passes += 1
            if self.scheduler.ran_something:
                self.collect()
            self.wake_at = self.next_wakeup(self.wake_at + TICK_COST, interval)
        if self.now < end:
            self.move_to(end)

    def next_wakeup(self, moment: float, interval: float | None) -> float:
        moment += interval if interval and interval > 0 else 0
        if not self.skip_idle_passes:
            return moment
        scheduler = self.scheduler
        if scheduler._heap is None:
            return moment
        top = scheduler._heap[0][0] if scheduler._heap else math.inf
        while True:
            re_read = (
                datetime.fromtimestamp(moment) - scheduler._last_full_sync
            ).total_seconds() >= SCHEDULE_SYNC_MAX_INTERVAL
            sync_due = not scheduler._last_sync or (moment - scheduler._last_sync) > scheduler.sync_every
            if moment >= top or re_read or sync_due:
                return moment
            self.idle_passes_skipped += 1
            moment += min(top - moment, scheduler.max_interval) + TICK_COST
