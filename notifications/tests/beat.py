"""A simulated beat for tests: moves the clock with time-machine and runs what beat would start.

The default cadences of the spec are written out again here on purpose, apart from
`notifications.schedule`, so the tests do not trust the code they check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from django.db import transaction
from django.utils import timezone

import tasks
from notifications import dispatcher

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


class Recorder:
    """Records each enqueued send with the clock time it was enqueued (after commit)."""

    def __init__(self):
        self.calls: list[tuple[int, datetime]] = []

    def install(self, monkeypatch) -> Recorder:
        original = dispatcher.enqueue

        def recording(log_ids):
            ids = list(log_ids)
            transaction.on_commit(lambda: self.calls.extend((log_id, timezone.now()) for log_id in ids))
            original(ids)

        monkeypatch.setattr(dispatcher, "enqueue", recording)
        return self

    def first_enqueue(self) -> dict[int, datetime]:
        first: dict[int, datetime] = {}
        for log_id, when in self.calls:
            first.setdefault(log_id, when)
        return first


class Beat:
    """Moves a time-machine traveller minute by minute and runs the periodic tasks due at each minute."""

    def __init__(self, start: datetime):
        self.traveller = time_machine.travel(start, tick=False)
        self.clock = self.traveller.start()
        self.now = start

    def stop(self) -> None:
        self.traveller.stop()

    def move_to(self, moment: datetime) -> None:
        self.clock.move_to(moment)
        self.now = moment

    def run_until(self, end: datetime) -> None:
        """Run every beat tick after now up to ``end`` included, skipping minutes where nothing can happen.

        Checks run at their quarter-hours; the relay also runs at each minute where a
        row becomes due. A relay run with nothing due does nothing, so skipping those
        minutes changes no outcome — it only keeps a simulated week fast.
        """
        minute = self.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute <= end:
            self.move_to(minute)
            for task in checks_due_at(minute):
                task.apply(throw=True)
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
