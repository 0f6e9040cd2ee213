"""The planner: turns loans into `NotificationLog` rows with their send time (`date_scheduled`).

- Lending plans the loan's whole reminder timeline at once (`plan_loan_timeline`).
- Extending cancels what was pending for the old due date and re-arms the
  timeline of the new one (`replan_after_extension`).
- The checks (`check_*`) are the safety net and the overdue ladder: each plans,
  for its class of loans, the rows whose time falls before its own next run plus
  a margin (read from its beat entry, so an admin edit to the cadence is followed).

The relay (`notifications.relay`) sends the rows when their time comes.
Every function here takes ``now`` and costs a constant number of queries,
however many loans it covers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from assets.models import Attribution, Duree

from . import dispatcher, schedule, timeline
from .dispatcher import Planned
from .models import REMINDER_TYPES, Audience, NotificationLog, TypeNotification

# How long before the due time the earliest reminder of a class can go out
# (its ideal time, moved at most a day earlier by quiet hours).
REMINDER_LEAD = {
    Duree.COURT: timedelta(hours=2) + timedelta(days=1),
    Duree.MOYEN: timedelta(hours=2) + timedelta(days=1),
    Duree.LONG: timedelta(days=4),
}
CHECK_OF_CLASS = {
    Duree.COURT: "check_court_terme_reminders",
    Duree.MOYEN: "check_moyen_terme_reminders",
    Duree.LONG: "check_long_terme_reminders",
}


def reminders_of(attribution: Attribution) -> list[Planned]:
    return [
        Planned(attribution, type_, ideal)
        for type_, ideal in timeline.reminder_times(
            attribution.date_debut, attribution.date_retour_prevue, attribution.duree
        )
    ]


def overdue_alerts_of(attribution: Attribution, levels: list[tuple[int, datetime]]) -> list[Planned]:
    """The RETARD rows of the given levels: the borrower always, the lender and manager from level 2."""
    items = []
    for level, ideal in levels:
        audiences = [Audience.CLIENT] + ([Audience.STAFF, Audience.MANAGER] if level >= 2 else [])
        items.extend(Planned(attribution, TypeNotification.RETARD, ideal, level, audience) for audience in audiences)
    return items


def plan_loan_timeline(attribution: Attribution, *, now: datetime) -> int:
    """Plan a new loan's CREATION (at once) and every reminder not already past. Returns how many went out at once.

    One transaction: the sends are enqueued together when it commits, CREATION first,
    and lending does no more database work after that (a worker may start at once).
    """
    with transaction.atomic():
        sent = dispatcher.plan([Planned(attribution, TypeNotification.CREATION, now)], now=now)
        sent += dispatcher.plan(reminders_of(attribution), now=now, not_before=max(now, attribution.date_debut))
    return sent


def replan_after_extension(attribution: Attribution, *, now: datetime, previous_due: datetime) -> int:
    """The due date moved: cancel what was pending for the old one, re-arm the timeline of the new one.

    Reminders of the new due date still ahead reuse the rows of the same type and
    channel (the unique constraint allows one), whatever became of them. Overdue
    alerts already planned or sent for the old due date are re-armed on the new
    ladder, so a loan that was late and is extended is alerted again if it is late again.
    """
    with transaction.atomic():
        dispatcher.cancel(
            NotificationLog.objects.filter(
                attribution=attribution, type_notification__in=[*REMINDER_TYPES, TypeNotification.RETARD]
            ),
            reason=_("The due date moved from %(old)s to %(new)s.")
            % {
                "old": timezone.localtime(previous_due).strftime("%Y-%m-%d %H:%M"),
                "new": timezone.localtime(attribution.date_retour_prevue).strftime("%Y-%m-%d %H:%M"),
            },
        )
        sent = dispatcher.rearm(reminders_of(attribution), now=now, not_before=max(now, attribution.date_debut))
        ladder = [(level, when) for level, when in timeline.overdue_times(attribution.date_retour_prevue) if when >= now]
        sent += dispatcher.rearm(overdue_alerts_of(attribution, ladder), now=now, insert=False)
    return sent


def loans_for_planning():
    return Attribution.objects.open().select_related(*dispatcher.PLANNING_RELATED)


def check_reminders(duree: str, *, now: datetime) -> int:
    """Plan the reminders of open loans of class ``duree`` whose time falls before the check's next run."""
    horizon = schedule.planning_horizon(CHECK_OF_CLASS[duree], now)
    loans = loans_for_planning().filter(
        duree=duree, date_retour_prevue__gt=now, date_retour_prevue__lte=horizon + REMINDER_LEAD[duree]
    )
    items = [item for loan in loans for item in reminders_of(loan)]
    return dispatcher.plan(items, now=now, not_before=now, until=horizon)


def check_court_terme_reminders(*, now: datetime) -> int:
    return check_reminders(Duree.COURT, now=now)


def check_moyen_terme_reminders(*, now: datetime) -> int:
    return check_reminders(Duree.MOYEN, now=now)


def check_long_terme_reminders(*, now: datetime) -> int:
    return check_reminders(Duree.LONG, now=now)


def current_levels(ladder: list[tuple[int, datetime]], *, now: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """The levels to plan now: those due by ``until``, skipping any already superseded by the next level.

    A loan found late with nothing sent (e.g. extended to a past time) gets its
    current level at once, not the whole backlog.
    """
    chosen = []
    for index, (level, when) in enumerate(ladder):
        following = ladder[index + 1][1] if index + 1 < len(ladder) else None
        if when <= until and (following is None or following > now):
            chosen.append((level, when))
    return chosen


def check_overdue_materials(*, now: datetime) -> int:
    """Plan the overdue ladder of loans still out after their due time (+ grace)."""
    horizon = schedule.planning_horizon("check_overdue_materials", now)
    grace = timedelta(minutes=settings.OVERDUE_GRACE_MINUTES)
    ladder_span = grace + (settings.OVERDUE_MAX_LEVELS - 1) * timedelta(hours=settings.OVERDUE_REPEAT_HOURS)
    loans = loans_for_planning().filter(
        date_retour_prevue__lte=horizon - grace,
        # Past the last level by a full interval there is nothing left to plan.
        date_retour_prevue__gt=now - ladder_span - timedelta(hours=settings.OVERDUE_REPEAT_HOURS),
    )
    items = []
    for loan in loans:
        levels = current_levels(timeline.overdue_times(loan.date_retour_prevue), now=now, until=horizon)
        items.extend(overdue_alerts_of(loan, levels))
    return dispatcher.plan(items, now=now, until=horizon)
