"""The learned send time: at which hour a reminder brings the loan back on time, per borrower and overall.

The model is counting, kept explainable on purpose:

- History: the borrower reminders sent in the last ``SEND_TIME_HISTORY_DAYS`` whose loan has a
  known outcome (back, or past due), by local hour band of sending (08:00–08:59 is band 8):
  how many, how many of their loans came back on time, how many were read (Twilio's ``read``).
- Per band, the on-time rate of everyone, smoothed toward the overall rate (Beta-binomial,
  ``PRIOR_WEIGHT`` pseudo-reminders); per borrower with enough reminders, their own rate per band
  smoothed toward everyone's rate of that band (``BORROWER_PRIOR_WEIGHT``).
- The candidates are the middles of the allowed bands (HH:30), within bounds that keep the timing
  promise: a long-loan reminder stays on the rule's day, inside ``SEND_TIME_WINDOW`` and outside
  every channel's quiet hours; a pre-due reminder goes between the ``SEND_TIME_LEAD_MINUTES``
  before the due time, never after it, never before the loan started or before now.
- The candidate with the best expected on-time rate wins (read rate breaks ties) if it beats the
  rule's band; otherwise, or with too little data, the rule's time stays. A small deterministic
  share of reminders (``SEND_TIME_EXPLORATION``) tries another allowed hour, so hours the rule
  never uses get data too.

Each choice is stored (`SendTimeChoice`) with its reason, shown on the loan page, and reused when
the checks plan the same reminder again (until the due time changes). `adjust` costs a constant
number of queries however many loans it is given.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, F, Q
from django.db.models.functions import ExtractHour

from . import stats, timeline
from .models import REMINDER_TYPES, Audience, NotificationLog, SendTimeChoice, Statut, TypeNotification

if TYPE_CHECKING:
    from assets.models import Attribution

    from .outbox import Planned

PRIOR_WEIGHT = 10.0
BORROWER_PRIOR_WEIGHT = 3.0
LONG_REMINDERS = frozenset(
    {TypeNotification.RAPPEL_J_MOINS_2, TypeNotification.RAPPEL_J_MOINS_1, TypeNotification.RAPPEL_FINAL}
)

Source, Why, Scope = SendTimeChoice.Source, SendTimeChoice.Why, SendTimeChoice.Scope


def is_enabled() -> bool:
    return bool(settings.SEND_TIME_LEARNING)


@dataclass(frozen=True)
class Counts:
    n: int = 0
    on_time: int = 0
    read: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.n + other.n, self.on_time + other.on_time, self.read + other.read)


@dataclass(frozen=True)
class History:
    """Reminder outcomes by local hour band: for everyone, and for some borrowers (client id → band → counts)."""

    overall: dict[int, Counts]
    by_borrower: dict[int, dict[int, Counts]]


def history_for(client_ids: Iterable[int], *, now: datetime) -> History:
    """The reminder history of everyone and of ``client_ids``: two aggregate queries."""
    base = (
        NotificationLog.objects.filter(
            audience=Audience.CLIENT,
            type_notification__in=REMINDER_TYPES,
            statut=Statut.ENVOYEE,
            date_envoi__isnull=False,
            date_scheduled__gte=now - timedelta(days=settings.SEND_TIME_HISTORY_DAYS),
        )
        .filter(Q(attribution__date_retour_effective__isnull=False) | Q(attribution__date_retour_prevue__lt=now))
        .order_by()
        .annotate(band=ExtractHour("date_envoi", tzinfo=timeline.local_tz()))
    )
    measures = {
        "n": Count("id"),
        "on_time": Count("id", filter=Q(attribution__date_retour_effective__lte=F("attribution__date_retour_prevue"))),
        "read": Count("id", filter=Q(delivery_status="read")),
    }
    overall = {
        row["band"]: Counts(row["n"], row["on_time"], row["read"]) for row in base.values("band").annotate(**measures)
    }
    by_borrower: dict[int, dict[int, Counts]] = defaultdict(dict)
    ids = set(client_ids)
    if ids:
        rows = base.filter(attribution__client_id__in=ids).values("attribution__client_id", "band").annotate(**measures)
        for row in rows:
            by_borrower[row["attribution__client_id"]][row["band"]] = Counts(row["n"], row["on_time"], row["read"])
    return History(overall, dict(by_borrower))


@dataclass(frozen=True)
class Estimates:
    """Expected on-time and read rates per band for one borrower, and what they rest on."""

    scope: str
    evidence: int
    on_time: dict[int, float]
    read: dict[int, float]

    def score(self, band: int) -> tuple[float, float]:
        return self.on_time[band], self.read[band]


def estimates(history: History, client_id: int | None) -> Estimates | None:
    """Smoothed rates for the 24 bands, or None when the history is too thin to learn from."""
    total = sum(history.overall.values(), Counts())
    if total.n < settings.SEND_TIME_MIN_REMINDERS:
        return None
    base_on_time, base_read = total.on_time / total.n, total.read / total.n
    everyone = {band: history.overall.get(band, Counts()) for band in range(24)}
    on_time = {b: stats.smoothed_rate(c.on_time, c.n, base_on_time, PRIOR_WEIGHT) for b, c in everyone.items()}
    read = {b: stats.smoothed_rate(c.read, c.n, base_read, PRIOR_WEIGHT) for b, c in everyone.items()}
    own = history.by_borrower.get(client_id, {}) if client_id is not None else {}
    own_total = sum(own.values(), Counts())
    if own_total.n < settings.SEND_TIME_MIN_BORROWER_REMINDERS:
        return Estimates(Scope.EVERYONE, total.n, on_time, read)
    mine = {band: own.get(band, Counts()) for band in range(24)}
    return Estimates(
        Scope.BORROWER,
        own_total.n,
        {b: stats.smoothed_rate(c.on_time, c.n, on_time[b], BORROWER_PRIOR_WEIGHT) for b, c in mine.items()},
        {b: stats.smoothed_rate(c.read, c.n, read[b], BORROWER_PRIOR_WEIGHT) for b, c in mine.items()},
    )


def band_of(moment: datetime) -> int:
    return moment.astimezone(timeline.local_tz()).hour


def window() -> tuple[time, time]:
    hours = timeline.parse_quiet_hours(settings.SEND_TIME_WINDOW)
    if hours is None or hours[0] > hours[1]:
        raise ImproperlyConfigured(
            f"SEND_TIME_WINDOW {settings.SEND_TIME_WINDOW!r} must be HH:MM-HH:MM within one day."
        )
    return hours


@checks.register(checks.Tags.compatibility)
def check_send_time_settings(app_configs=None, **kwargs) -> list[checks.Error]:
    """The learner's settings, checked at start-up (`manage.py check`), not when a lend plans its reminders."""
    errors = []
    try:
        window()
    except ImproperlyConfigured as error:
        errors.append(checks.Error(str(error), id="notifications.E801"))
    leads = settings.SEND_TIME_LEAD_MINUTES
    if not (len(leads) == 2 and 0 < leads[0] < leads[1]):
        errors.append(
            checks.Error(
                f"SEND_TIME_LEAD_MINUTES {','.join(map(str, leads))!r} must be two minute counts, shortest first, e.g. 60,240.",
                id="notifications.E802",
            )
        )
    if not 0 <= settings.SEND_TIME_EXPLORATION <= 1:
        errors.append(checks.Error("SEND_TIME_EXPLORATION must be between 0 and 1.", id="notifications.E803"))
    return errors


def in_quiet_hours(moment: datetime) -> bool:
    """Inside the quiet hours of any channel: a learned time must suit every channel the reminder goes on."""
    return any(timeline.quiet_period(moment, canal) is not None for canal in settings.QUIET_HOURS)


def candidates(
    type_notification: str,
    rule_at: datetime,
    *,
    date_debut: datetime,
    date_retour_prevue: datetime,
    not_before: datetime,
) -> list[datetime]:
    """The times a learned reminder may take instead of ``rule_at`` (HH:30 of each allowed band), in time order.

    Bounds: within ``SEND_TIME_WINDOW`` and outside quiet hours; not before the start or
    ``not_before``; at least the shortest lead before the due time; a long-loan reminder on
    the rule's local day, a pre-due one (RAPPEL_2H) within the lead window before the due time.
    """
    due = timeline.utc(date_retour_prevue)
    shortest, longest = (timedelta(minutes=m) for m in settings.SEND_TIME_LEAD_MINUTES)
    earliest = max(timeline.utc(date_debut), timeline.utc(not_before))
    latest = due - shortest
    if type_notification in LONG_REMINDERS:
        days = [rule_at.astimezone(timeline.local_tz()).date()]
    else:
        earliest = max(earliest, due - longest)
        days = sorted({earliest.astimezone(timeline.local_tz()).date(), latest.astimezone(timeline.local_tz()).date()})
    begin, end = window()
    found = []
    for day in days:
        for hour in range(24):
            wall = time(hour, 30)
            if not begin <= wall < end:
                continue
            moment = timeline.at_local(day, wall)
            if earliest <= moment <= latest and not in_quiet_hours(moment):
                found.append(moment)
    return sorted(found)


@dataclass(frozen=True)
class Choice:
    rule_at: datetime
    chosen_at: datetime
    source: str
    why: str
    scope: str = ""
    evidence: int = 0
    expected_on_time: float | None = None
    rule_on_time: float | None = None


def _share(attribution_id: int, type_notification: str, salt: str) -> float:
    digest = hashlib.sha256(f"send-time:{salt}:{attribution_id}:{type_notification}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(
    type_notification: str, rule_at: datetime, attribution: Attribution, history: History, *, not_before: datetime
) -> Choice:
    """The time of one reminder: the best-expected allowed hour, or the rule's time, with the reason."""
    found = estimates(history, attribution.client_id)
    if found is None:
        return Choice(rule_at, rule_at, Source.RULE, Why.THIN_DATA, evidence=sum(c.n for c in history.overall.values()))
    options = candidates(
        type_notification,
        rule_at,
        date_debut=attribution.date_debut,
        date_retour_prevue=attribution.date_retour_prevue,
        not_before=not_before,
    )
    rule_score = found.score(band_of(rule_at))
    facts: dict[str, Any] = {"scope": found.scope, "evidence": found.evidence, "rule_on_time": rule_score[0]}
    others = [moment for moment in options if band_of(moment) != band_of(rule_at)]
    if not others:
        return Choice(rule_at, rule_at, Source.RULE, Why.NO_ROOM, expected_on_time=rule_score[0], **facts)
    if _share(attribution.pk, type_notification, "explore") < settings.SEND_TIME_EXPLORATION:
        tried = others[int(_share(attribution.pk, type_notification, "which") * len(others))]
        return Choice(
            rule_at, tried, Source.LEARNED, Why.EXPLORING, expected_on_time=found.on_time[band_of(tried)], **facts
        )
    best = max(others, key=lambda moment: (found.score(band_of(moment)), -abs(moment - rule_at)))
    best_score = found.score(band_of(best))
    if best_score <= rule_score:
        return Choice(rule_at, rule_at, Source.RULE, Why.NO_BETTER_HOUR, expected_on_time=rule_score[0], **facts)
    return Choice(rule_at, best, Source.LEARNED, Why.LEARNED, expected_on_time=best_score[0], **facts)


CHOICE_FIELDS = [
    "rule_at",
    "chosen_at",
    "source",
    "why",
    "scope",
    "evidence",
    "expected_on_time",
    "rule_on_time",
    "decided_at",
]


def adjust(items: Sequence[Planned], *, now: datetime) -> list[Planned]:
    """The planner's items with each pre-due reminder at its chosen time; unchanged when learning is off.

    A reminder already decided for the same rule time (same due date) keeps its choice, so
    the checks re-planning it, or planning its other channels, agree with lending. Constant
    queries: the stored choices, the history (two), and one upsert.
    """
    items = list(items)
    if not is_enabled():
        return items
    reminders = [item for item in items if item.type_notification in REMINDER_TYPES]
    if not reminders:
        return items
    stored = {
        (choice.attribution_id, choice.type_notification): choice
        for choice in SendTimeChoice.objects.filter(
            attribution_id__in={item.attribution.pk for item in reminders},
            type_notification__in={item.type_notification for item in reminders},
        )
    }
    chosen: dict[tuple[int, str], datetime] = {}
    undecided = []
    for item in reminders:
        key = (item.attribution.pk, item.type_notification)
        previous = stored.get(key)
        if previous is not None and previous.rule_at == item.date_scheduled:
            chosen[key] = previous.chosen_at
        else:
            undecided.append(item)
    if undecided:
        history = history_for({item.attribution.client_id for item in undecided}, now=now)
        fresh = []
        for item in undecided:
            attribution = item.attribution
            choice = choose(
                item.type_notification,
                item.date_scheduled,
                attribution,
                history,
                not_before=max(now, attribution.date_debut),
            )
            chosen[(attribution.pk, item.type_notification)] = choice.chosen_at
            fresh.append(
                SendTimeChoice(
                    attribution=attribution, type_notification=item.type_notification, decided_at=now, **vars(choice)
                )
            )
        SendTimeChoice.objects.bulk_create(
            fresh,
            update_conflicts=True,
            unique_fields=["attribution", "type_notification"],
            update_fields=CHOICE_FIELDS,
        )
    return [
        replace(item, date_scheduled=chosen[(item.attribution.pk, item.type_notification)])
        if (item.attribution.pk, item.type_notification) in chosen
        else item
        for item in items
    ]
