"""A simulated beat for tests: moves the clock with time-machine and runs what beat would start.

The default cadences of the spec are written out again here on purpose, apart from
`notifications.schedule`, so the tests do not trust the code they check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from django.utils import timezone

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
