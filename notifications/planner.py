"""The planner: turns loans into `NotificationLog` rows with their send time (`date_scheduled`).

- Lending plans the loan's whole reminder timeline at once (`plan_loan_timeline`).
- Extending cancels what was pending for the old due date and re-arms the
  timeline of the new one (`replan_after_extension`).
- The checks (`check_*`) are the safety net and the overdue ladder: each plans,
  for its class of loans, the rows whose time falls before its own next run plus
  a margin (read from its beat entry, so an admin edit to the cadence is followed).

The relay (`notifications.relay`) sends the rows when their time comes.
Every function here takes ``now`` and costs a constant number of queries,
however many loans it covers (per `PLAN_CHUNK` loans for a check's cold start).
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from assets.models import Attribution, Duree

from . import lifecycle, outbox, recipients, schedule, send_time, timeline
from .channels import spec_of
from .models import CLAIMABLE_STATUTS, REMINDER_TYPES, Audience, Canal, NotificationLog, TypeNotification
from .outbox import Planned

# How long before the due time the earliest reminder of a class can go out
# (its ideal time, moved at most a day earlier by quiet hours).
REMINDER_LEAD: dict[str, timedelta] = {
    Duree.COURT: timedelta(hours=2) + timedelta(days=1),
    Duree.MOYEN: timedelta(hours=2) + timedelta(days=1),
    Duree.LONG: timedelta(days=4),
}
# Loans a check plans at a time. One statement takes at most 65,535 parameters on PostgreSQL with
# server-side binding (DB_PREPARED_STATEMENTS), and planning looks its loans up by id: a cold start
# with 100,000 loans to plan (a restore, a first install) goes a chunk at a time, each in its own transaction.
PLAN_CHUNK = 5_000


def in_chunks(loans: list[Attribution]) -> list[list[Attribution]]:
    """``loans`` cut into runs of at most `PLAN_CHUNK`; one empty run when there are none (the same queries)."""
    return [loans[start : start + PLAN_CHUNK] for start in range(0, max(len(loans), 1), PLAN_CHUNK)]


CHECK_OF_CLASS: dict[str, str] = {
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
    items: list[Planned] = []
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
        sent = outbox.plan([Planned(attribution, TypeNotification.CREATION, now)], now=now)
        reminders = send_time.adjust(reminders_of(attribution), now=now)
        sent += outbox.plan(reminders, now=now, not_before=max(now, attribution.date_debut))
    return sent


def replan_after_extension(attribution: Attribution, *, now: datetime, previous_due: datetime) -> int:
    """The due date moved: tell the borrower, cancel what was pending for the old one, re-arm the timeline.

    The extension notice (PROLONGATION) is a new row per extension (``niveau_escalade``
    counts them, so each keeps its audit); one still waiting for an earlier extension
    is cancelled and the new one says "moved from" the date that one would have
    announced, the date the borrower last heard of.

    Reminders of the new due date still ahead reuse the rows of the same type and
    channel (the unique constraint allows one), whatever became of them. Overdue
    alerts already planned or sent for the old due date are re-armed on the new
    ladder, so a loan that was late and is extended is alerted again if it is late again.
    """
    with transaction.atomic():
        lifecycle.cancel(
            NotificationLog.objects.filter(
                attribution=attribution, type_notification__in=[*REMINDER_TYPES, TypeNotification.RETARD]
            ),
            code="DUE_MOVED",
            old=previous_due,
            new=attribution.date_retour_prevue,
        )
        sent = plan_extension_notice(attribution, now=now, previous_due=previous_due)
        reminders = send_time.adjust(reminders_of(attribution), now=now)
        sent += outbox.rearm(reminders, now=now, not_before=max(now, attribution.date_debut))
        ladder = [
            (level, when) for level, when in timeline.overdue_times(attribution.date_retour_prevue) if when >= now
        ]
        sent += outbox.rearm(overdue_alerts_of(attribution, ladder), now=now, insert=False)
    return sent


def plan_extension_notice(attribution: Attribution, *, now: datetime, previous_due: datetime) -> int:
    notices = NotificationLog.objects.select_for_update().filter(
        attribution=attribution, type_notification=TypeNotification.PROLONGATION
    )
    known = list(notices.values_list("niveau_escalade", "statut", "previous_due"))
    waiting = [old for _level, statut, old in known if statut in CLAIMABLE_STATUTS and old is not None]
    told = min(waiting, default=previous_due)
    lifecycle.cancel(notices, code="NOTICE_REPLACED")
    level = max((level for level, _statut, _old in known), default=0) + 1
    notice = Planned(attribution, TypeNotification.PROLONGATION, now, level, previous_due=told)
    return outbox.plan([notice], now=now)


def loans_for_planning():
    return Attribution.objects.open().select_related(*outbox.PLANNING_RELATED)


def quiet_slack(canal: str) -> timedelta:
    """How far quiet hours can move a notification on ``canal`` from its ideal time, either way."""
    hours = timeline.parse_quiet_hours(spec_of(canal).quiet_hours)
    if hours is None:
        return timedelta(0)
    begin, end = (timedelta(hours=t.hour, minutes=t.minute) for t in hours)
    return (end - begin) % timedelta(days=1) + timedelta(hours=1) + timeline.BEFORE_QUIET


def missing(type_notification: str, canal: str, audience: str = Audience.CLIENT, level: int = 0) -> Q:
    """The loan has no row for this notification on this channel (whatever its status)."""
    return Q(
        ~Exists(
            NotificationLog.objects.filter(
                attribution=OuterRef("pk"),
                type_notification=type_notification,
                canal=canal,
                audience=audience,
                niveau_escalade=level,
            )
        )
    )


def lacking(loans, arms: list[Q]):
    """The loans of ``loans`` that meet one of ``arms`` (each ends in a NOT EXISTS on the log).

    One statement: each arm is its own SELECT, so PostgreSQL turns its NOT EXISTS into an
    anti-join over a narrow band of due times, and the union is joined back to the loans.
    """
    if not arms:
        return loans.none()
    base = Attribution.objects.open().order_by()
    selects = [base.filter(arm).values("pk") for arm in arms]
    return loans.filter(pk__in=selects[0].union(*selects[1:]) if len(selects) > 1 else selects[0])


def reminder_arms(duree: str, *, now: datetime, horizon: datetime) -> list[Q]:
    """Per reminder (and due day) and channel: loans whose row may fall due in [now, horizon] and have none.

    Loans met here are only candidates: the exact rules then run in Python (`outbox.plan`).
    """
    arms = []
    for type_ in timeline.REMINDERS_OF_CLASS[duree]:
        for canal, gets_it in recipients.client_channel_conditions(type_).items():
            when = two_hours_before(canal, now=now, horizon=horizon) if type_ == TypeNotification.RAPPEL_2H else None
            if when is None:
                when = fixed_ideal_days(type_, canal, now=now, horizon=horizon)
            if send_time.is_enabled():
                when = ~recipients.NEVER  # a learned time can be any allowed hour: the loan window is the bound
            if when is not None:
                arms.append(Q(duree=duree) & when & gets_it & missing(type_, canal))
    return arms


def two_hours_before(canal: str, *, now: datetime, horizon: datetime) -> Q:
    """RAPPEL_2H (ideal: due − 2 h real time) on ``canal`` may fall in [now, horizon].

    Exact without quiet hours; with them, quiet hours move it by at most ``quiet_slack``.
    """
    lead = timeline.TWO_HOURS
    slack = quiet_slack(canal)
    return Q(date_retour_prevue__gte=now + lead - slack, date_retour_prevue__lte=horizon + lead + slack) & Q(
        date_debut__lte=F("date_retour_prevue") - lead
    )


def fixed_ideal_days(type_: str, canal: str, *, now: datetime, horizon: datetime) -> Q | None:
    """A long loan's reminder (08:00 local before or on the due day) on ``canal`` falls in [now, horizon].

    Its ideal time depends only on the local due day (and, for RAPPEL_FINAL, on being due
    before 08:00), so per due day the rules of `timeline.channel_time` become exact
    conditions on the loan's start and due time. None when no due day qualifies.
    """
    tz = timeline.local_tz()
    first = now.astimezone(tz).date()
    last = (horizon + REMINDER_LEAD[Duree.LONG]).astimezone(tz).date()
    conditions = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        starts, ends = timeline.at_local(day, time(0, 0)), timeline.at_local(day + timedelta(days=1), time(0, 0))
        morning = timeline.at_local(day, timeline.MORNING)
        if type_ == TypeNotification.RAPPEL_FINAL:
            # Due by 08:00: at the start of the due day; later: at 08:00.
            parts = [(Q(date_retour_prevue__gte=starts, date_retour_prevue__lte=morning), starts)]
            parts.append((Q(date_retour_prevue__gt=morning, date_retour_prevue__lt=ends), morning))
        else:
            back = 2 if type_ == TypeNotification.RAPPEL_J_MOINS_2 else 1
            ideal = timeline.at_local(day - timedelta(days=back), timeline.MORNING)
            parts = [(Q(date_retour_prevue__gte=starts, date_retour_prevue__lt=ends), ideal)]
        for on_day, ideal in parts:
            sent_when = channel_time_condition(type_, canal, ideal, now=now, horizon=horizon)
            if sent_when is not None:
                conditions.append(on_day & Q(date_debut__lte=ideal) & sent_when)
    return functools.reduce(operator.or_, conditions) if conditions else None


def channel_time_condition(type_: str, canal: str, ideal: datetime, *, now: datetime, horizon: datetime) -> Q | None:
    """`timeline.channel_time` of a pre-due reminder with a known ideal time, as a condition on the loan.

    The condition under which that channel time is in [now, horizon]; None when it never is.
    """
    period = timeline.quiet_period(ideal, canal)
    if period is None:
        return ~recipients.NEVER if now <= ideal <= horizon else None
    begin, end = period
    options = []
    if now <= end <= horizon:
        options.append(Q(date_retour_prevue__gt=end))
    earlier = begin - timeline.BEFORE_QUIET
    if now <= earlier <= horizon:
        options.append(Q(date_retour_prevue__lte=end, date_debut__lte=earlier))
    return functools.reduce(operator.or_, options) if options else None


def check_reminders(duree: str, *, now: datetime) -> int:
    """Plan the reminders of open loans of class ``duree`` whose time falls before the check's next run.

    Only loans still lacking a row that may be due in this run are loaded, so a run
    where everything is already planned reads no loan at all.
    """
    horizon = schedule.planning_horizon(CHECK_OF_CLASS[duree], now)
    loans = loans_for_planning().filter(
        duree=duree, date_retour_prevue__gt=now, date_retour_prevue__lte=horizon + REMINDER_LEAD[duree]
    )
    loans = list(lacking(loans, reminder_arms(duree, now=now, horizon=horizon)))
    enqueued = 0
    for chunk in in_chunks(loans):
        items = send_time.adjust([item for loan in chunk for item in reminders_of(loan)], now=now)
        enqueued += outbox.plan(items, now=now, not_before=now, until=horizon)
    return enqueued


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


def overdue_arms(*, now: datetime, horizon: datetime) -> list[Q]:
    """Per overdue level, audience and channel: loans at that level by ``horizon`` that have no row for it.

    Mirrors `current_levels`: level *k* is planned when its time is due by the horizon and
    the next level's is not yet past.
    """
    grace = timedelta(minutes=settings.OVERDUE_GRACE_MINUTES)
    repeat = timedelta(hours=settings.OVERDUE_REPEAT_HOURS)
    top = settings.OVERDUE_MAX_LEVELS
    arms = []
    for level in range(1, top + 1):
        channels = [
            (Audience.CLIENT, canal, gets_it)
            for canal, gets_it in recipients.client_channel_conditions(TypeNotification.RETARD).items()
        ]
        if level >= 2:
            channels += [
                (audience, Canal.EMAIL, recipients.audience_condition(audience)) for audience in STAFF_AUDIENCES
            ]
        for audience, canal, gets_it in channels:
            # An alert whose time falls in the quiet period around the horizon goes out at its end, after the horizon.
            quiet = timeline.quiet_period(horizon, canal)
            offset = grace + (level - 1) * repeat
            at_level = (
                Q(date_retour_prevue__lt=quiet[0] - offset) if quiet else Q(date_retour_prevue__lte=horizon - offset)
            )
            if level < top:
                at_level &= Q(date_retour_prevue__gt=now - grace - level * repeat)
            arms.append(at_level & gets_it & missing(TypeNotification.RETARD, canal, audience, level))
    return arms


STAFF_AUDIENCES = (Audience.STAFF, Audience.MANAGER)


def check_overdue_materials(*, now: datetime) -> int:
    """Plan the overdue ladder of loans still out after their due time (+ grace).

    Only loans lacking a row of their current level are loaded.
    """
    horizon = schedule.planning_horizon("check_overdue_materials", now)
    grace = timedelta(minutes=settings.OVERDUE_GRACE_MINUTES)
    ladder_span = grace + (settings.OVERDUE_MAX_LEVELS - 1) * timedelta(hours=settings.OVERDUE_REPEAT_HOURS)
    window = Q(
        date_retour_prevue__lte=horizon - grace,
        # Past the last level by a full interval there is nothing left to plan.
        date_retour_prevue__gt=now - ladder_span - timedelta(hours=settings.OVERDUE_REPEAT_HOURS),
    )
    loans = lacking(
        loans_for_planning().filter(window), [window & arm for arm in overdue_arms(now=now, horizon=horizon)]
    )
    enqueued = 0
    for chunk in in_chunks(list(loans)):
        items = []
        for loan in chunk:
            levels = current_levels(timeline.overdue_times(loan.date_retour_prevue), now=now, until=horizon)
            items.extend(overdue_alerts_of(loan, levels))
        enqueued += outbox.plan(items, now=now, until=horizon)
    return enqueued
