"""What the dashboard shows: the loans that need attention now and how notifications went this week.

A fixed handful of aggregate queries, whatever the number of loans or log rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from notifications.api import Canal, NotificationLog, Statut, late_cutoff, reachable_loans

from .models import Attribution, Duree, ExtensionRequest, overdue_at

CHART_DAYS = 7
# Status groups drawn as the stacked segments of each day's bar, bottom to top.
CHART_GROUPS = (
    ("sent", (Statut.ENVOYEE,)),
    ("waiting", (Statut.EN_ATTENTE, Statut.EN_COURS)),
    ("failed", (Statut.ECHEC, Statut.ECHEC_PERMANENT)),
    ("cancelled", (Statut.ANNULEE,)),
)
CHART_HEIGHT = 160
ALERT_COUNT_CAP = 1000
BAR_WIDTH = 44
BAR_GAP = 26


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


@dataclass
class DayBar:
    day: date
    counts: dict[str, int]
    x: int = 0
    top: int = CHART_HEIGHT
    segments: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def today_bounds(now: datetime) -> tuple[datetime, datetime]:
    today = timezone.localtime(now).date()
    return local_midnight(today), local_midnight(today + timedelta(days=1))


def window_filter(window: str, now: datetime) -> Q:
    """The loans behind one dashboard card, for the loan list it opens (`views.LOAN_WINDOWS`)."""
    day_start, day_end = today_bounds(now)
    return {
        "due_2h": Q(date_retour_effective__isnull=True, date_retour_prevue__gte=now)
        & Q(date_retour_prevue__lt=now + timedelta(hours=2)),
        "due_today": Q(date_retour_effective__isnull=True, date_retour_prevue__gte=now, date_retour_prevue__lt=day_end),
        "returned_today": Q(date_retour_effective__gte=day_start, date_retour_effective__lt=day_end),
    }[window]


def loan_summary(now: datetime) -> dict:
    day_start, day_end = today_bounds(now)
    open_loans = Attribution.objects.open()
    by_class = dict(open_loans.order_by().values_list("duree").annotate(n=Count("id")))
    counts = open_loans.aggregate(
        out=Count("id"),
        overdue=Count("id", filter=overdue_at(now)),
        due_2h=Count("id", filter=Q(date_retour_prevue__gte=now, date_retour_prevue__lt=now + timedelta(hours=2))),
        due_today=Count("id", filter=Q(date_retour_prevue__gte=now, date_retour_prevue__lt=day_end)),
        reachable=Count("id", filter=reachable_loans()),
    )
    counts["unreachable"] = counts["out"] - counts.pop("reachable")
    counts["returned_today"] = Attribution.objects.filter(
        date_retour_effective__gte=day_start, date_retour_effective__lt=day_end
    ).count()
    related = open_loans.select_related("materiel", "client")
    return {
        "by_class": [(value, label, by_class.get(value, 0)) for value, label in Duree.choices],
        "counts": counts,
        "overdue": related.overdue(now).order_by("date_retour_prevue")[:10],
        "due_today": related.filter(date_retour_prevue__gte=now, date_retour_prevue__lt=day_end).order_by(
            "date_retour_prevue"
        )[:10],
    }


def notification_week(now: datetime) -> dict:
    today = timezone.localtime(now).date()
    first_day = today - timedelta(days=CHART_DAYS - 1)
    week = NotificationLog.objects.filter(date_scheduled__gte=local_midnight(first_day), date_scheduled__lte=now)
    group_of = {statut: name for name, statuts in CHART_GROUPS for statut in statuts}
    bars = {first_day + timedelta(days=i): DayBar(first_day + timedelta(days=i), {}) for i in range(CHART_DAYS)}
    per_day = (
        week.annotate(day=TruncDate("date_scheduled", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values_list("day", "statut")
        .annotate(n=Count("id"))
    )
    for day, statut, n in per_day:
        if day in bars:
            group = group_of[statut]
            bars[day].counts[group] = bars[day].counts.get(group, 0) + n
    highest = max([bar.total for bar in bars.values()] + [1])
    for i, bar in enumerate(bars.values()):
        bar.x = BAR_GAP + i * (BAR_WIDTH + BAR_GAP)
        y = CHART_HEIGHT
        for name, _statuts in CHART_GROUPS:
            n = bar.counts.get(name, 0)
            if n:
                height = max(2, round(n * CHART_HEIGHT / highest))
                y -= height
                bar.segments.append({"group": name, "count": n, "y": y, "height": height})
        bar.top = y
    per_channel = week.order_by().values_list("canal", "statut").annotate(n=Count("id"))
    channels: dict[str, dict[str, int]] = {}
    for canal, statut, n in per_channel:
        row = channels.setdefault(canal, {name: 0 for name, _ in CHART_GROUPS})
        row[group_of[statut]] += n
    return {
        "bars": list(bars.values()),
        "chart_width": BAR_GAP + CHART_DAYS * (BAR_WIDTH + BAR_GAP),
        "chart_height": CHART_HEIGHT,
        "bar_width": BAR_WIDTH,
        "highest": highest,
        "channels": [(canal, Canal(canal).label, row) for canal, row in sorted(channels.items())],
        "groups": [name for name, _ in CHART_GROUPS],
    }


def capped_count(queryset, cap: int = ALERT_COUNT_CAP) -> int:
    """COUNT that stops at ``cap``: the banner needs "how many, roughly", not a scan of a backlog."""
    return queryset.order_by().values("id")[:cap].count()


def grace_until(now: datetime) -> datetime | None:
    """End of the start-up grace period, or None once it is over.

    The grace period is the first DASHBOARD_STARTUP_GRACE_MINUTES after this web process started
    (`AssetsConfig.started_at`): when the stack starts together, beat has not ticked yet, the workers
    are still booting and the relay has a backlog to catch up, so "not sending" is expected for a
    few minutes and must not turn the front desk's page red. The scheduler page still tells it all.
    """
    started: datetime = getattr(apps.get_app_config("assets"), "started_at")  # noqa: B009  (AssetsConfig's)
    end = started + timedelta(minutes=settings.DASHBOARD_STARTUP_GRACE_MINUTES)
    return end if started <= now < end else None


def alerts(now: datetime) -> dict:
    """What should turn the dashboard banner red: failures piling up, or sends nobody picked up."""
    failed_recently = capped_count(
        NotificationLog.objects.filter(statut=Statut.ECHEC_PERMANENT, updated_at__gte=now - timedelta(hours=24))
    )
    stuck = capped_count(NotificationLog.objects.due(late_cutoff(now)))
    return {
        "failed_recently": failed_recently,
        "failures_pile_up": failed_recently >= settings.DASHBOARD_FAILURE_ALERT,
        "stuck": stuck,
        "stuck_after": settings.NOTIFICATION_BACKLOG_MAX_MINUTES,
        "cap": ALERT_COUNT_CAP,
    }


PENDING_EXTENSIONS_SHOWN = 20


def pending_extensions() -> list[ExtensionRequest]:
    """Borrowers' extension requests waiting for staff on loans still out, oldest first (one query)."""
    return list(
        ExtensionRequest.objects.filter(
            statut=ExtensionRequest.Statut.EN_ATTENTE, attribution__date_retour_effective__isnull=True
        )
        .select_related("attribution__materiel", "attribution__client")
        .order_by("requested_at", "id")[:PENDING_EXTENSIONS_SHOWN]
    )
