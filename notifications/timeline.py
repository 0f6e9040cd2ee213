"""When each notification of a loan should go out: pure functions of the loan and the settings.

All wall-clock rules (08:00, quiet hours) are read in ``settings.TIME_ZONE``;
durations (2 h before, grace, repeat interval) are real elapsed time, computed in
UTC, so a loan across a DST change is reminded at the right moment.

The rules (docs/timing.md):

- RAPPEL_2H (COURT, MOYEN): due − 2 h; none if that is before the start.
- RAPPEL_J_MOINS_2 / RAPPEL_J_MOINS_1 (LONG): 08:00 two / one calendar day(s)
  before the due day; none if that is before the start.
- RAPPEL_FINAL (LONG): 08:00 on the due day; when the loan is due before 08:00,
  at the start (00:00) of the due day instead.
- RETARD level k (1…OVERDUE_MAX_LEVELS): due + grace + (k − 1) × repeat interval.
- Quiet hours (per channel): a reminder or overdue alert whose time falls in them
  moves to the end of the quiet period. A pre-due reminder for which that would be
  at or after the due time moves instead to 5 minutes before the quiet period
  starts; if that is before the loan started, this channel skips it.
  CREATION, RESTITUTION and PROLONGATION_REFUSEE answer a staff action and always go at once.
- PROLONGATION (extension notice): at once when the due date moves, moved by quiet
  hours like an overdue alert (to the end of the period); dropped if the loan is returned first.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from assets.models import Duree

from .channels import spec_of
from .models import REMINDER_TYPES, TypeNotification

MORNING = time(8, 0)
TWO_HOURS = timedelta(hours=2)
BEFORE_QUIET = timedelta(minutes=5)
IMMEDIATE_TYPES = frozenset(
    {TypeNotification.CREATION, TypeNotification.RESTITUTION, TypeNotification.PROLONGATION_REFUSEE}
)
OBSOLETE_ONCE_RETURNED = frozenset({TypeNotification.RETARD, TypeNotification.PROLONGATION})
# Which reminders belong to which duration class.
REMINDERS_OF_CLASS: dict[str, tuple[TypeNotification, ...]] = {
    Duree.COURT: (TypeNotification.RAPPEL_2H,),
    Duree.MOYEN: (TypeNotification.RAPPEL_2H,),
    Duree.LONG: (TypeNotification.RAPPEL_J_MOINS_2, TypeNotification.RAPPEL_J_MOINS_1, TypeNotification.RAPPEL_FINAL),
}


def lapse_reason(type_notification: str, *, returned: bool, due: datetime, duree: str, now: datetime) -> str:
    """Why a notification of this loan is no longer worth sending at ``now`` (a `reasons` code), or "" while it is.

    The one rule both the relay (before enqueueing) and the send service (after claiming) apply:
    nothing but the receipt after the return, no pre-due reminder once the due time has
    passed or for a duration class the loan no longer has, no J-2 or J-1 reminder on another
    day than its own.
    """
    if returned and (type_notification in REMINDER_TYPES or type_notification in OBSOLETE_ONCE_RETURNED):
        return "LOAN_RETURNED"
    if type_notification in REMINDER_TYPES:
        if now >= due:
            return "ALREADY_DUE"
        if type_notification not in REMINDERS_OF_CLASS.get(duree, ()):
            return "CLASS_CHANGED"
        days = DAYS_BEFORE_DUE_DAY.get(type_notification)
        if days is not None and local_day(due) - local_day(now) != timedelta(days=days):
            # Its text says "tomorrow" or "in 2 days": sent on another day (a retry after midnight, a row
            # held back by an outage) it would name the wrong day; the next reminder says it right.
            return "PAST_ITS_DAY"
    return ""


# The long loans' reminders that speak of a day: how many days before the due day they are sent.
DAYS_BEFORE_DUE_DAY: dict[str, int] = {TypeNotification.RAPPEL_J_MOINS_2: 2, TypeNotification.RAPPEL_J_MOINS_1: 1}


def local_day(moment: datetime) -> date:
    return moment.astimezone(local_tz()).date()


def local_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def at_local(day: date, wall: time) -> datetime:
    """``wall`` o'clock on ``day`` in the local zone, as an aware UTC datetime."""
    return utc(datetime.combine(day, wall, tzinfo=local_tz()))


def reminder_times(date_debut: datetime, date_retour_prevue: datetime, duree: str) -> list[tuple[str, datetime]]:
    """The pre-due reminders of a loan with their ideal times (UTC), in time order."""
    start, due = utc(date_debut), utc(date_retour_prevue)
    if duree in (Duree.COURT, Duree.MOYEN):
        ideal = due - TWO_HOURS
        return [(TypeNotification.RAPPEL_2H, ideal)] if ideal >= start else []
    due_day = due.astimezone(local_tz()).date()
    times = [
        (TypeNotification.RAPPEL_J_MOINS_2, at_local(due_day - timedelta(days=2), MORNING)),
        (TypeNotification.RAPPEL_J_MOINS_1, at_local(due_day - timedelta(days=1), MORNING)),
    ]
    final = at_local(due_day, MORNING)
    if final >= due:
        final = at_local(due_day, time(0, 0))
    times.append((TypeNotification.RAPPEL_FINAL, final))
    return [(type_, ideal) for type_, ideal in times if ideal >= start]


def overdue_times(date_retour_prevue: datetime) -> list[tuple[int, datetime]]:
    """The overdue ladder: (level, ideal time) from 1 to OVERDUE_MAX_LEVELS."""
    first = utc(date_retour_prevue) + timedelta(minutes=settings.OVERDUE_GRACE_MINUTES)
    repeat = timedelta(hours=settings.OVERDUE_REPEAT_HOURS)
    return [(level, first + (level - 1) * repeat) for level in range(1, settings.OVERDUE_MAX_LEVELS + 1)]


@functools.lru_cache(maxsize=16)
def parse_quiet_hours(spec: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` → (21:00, 08:00); empty → None. A period may cross midnight."""
    spec = (spec or "").strip()
    if not spec:
        return None
    try:
        begin, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
    except ValueError:
        raise ImproperlyConfigured(
            f"Quiet hours {spec!r} are not of the form HH:MM-HH:MM (e.g. 21:00-08:00)."
        ) from None
    if begin == end:
        raise ImproperlyConfigured(f"Quiet hours {spec!r} start and end at the same time.")
    return begin, end


def quiet_period(moment: datetime, canal: str) -> tuple[datetime, datetime] | None:
    """The quiet period of ``canal`` that contains ``moment`` as (start, end) in UTC, or None."""
    hours = parse_quiet_hours(spec_of(canal).quiet_hours)
    if hours is None:
        return None
    begin, end = hours
    local = moment.astimezone(local_tz())
    day, wall = local.date(), local.time()
    if begin < end:
        if begin <= wall < end:
            return at_local(day, begin), at_local(day, end)
        return None
    if wall >= begin:
        return at_local(day, begin), at_local(day + timedelta(days=1), end)
    if wall < end:
        return at_local(day - timedelta(days=1), begin), at_local(day, end)
    return None


def channel_time(
    type_notification: str, canal: str, ideal: datetime, *, date_debut: datetime, date_retour_prevue: datetime
) -> datetime | None:
    """When this notification goes out on ``canal``, after quiet hours; None when this channel skips it."""
    if type_notification in IMMEDIATE_TYPES:
        return ideal
    period = quiet_period(ideal, canal)
    if period is None:
        return ideal
    begin, end = period
    if type_notification not in REMINDER_TYPES or end < utc(date_retour_prevue):
        return end
    earlier = begin - BEFORE_QUIET
    return earlier if earlier >= utc(date_debut) else None
