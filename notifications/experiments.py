"""Experiments on message content: which variant a loan gets, and whether a variant brings loans back on time.

- Assignment is a pure function of (experiment, loan) (`notifications.assignment`): a hash of
  both ids placed in the variants' shares. Every row of a loan — retries, fallbacks, several reminders of one
  type — gets the same variant, in any process, without storing anything first.
- The message rendering (`notifications.messages.variant_for`) picks the loan's text;
  the send records the variant on the `NotificationLog` row it sent.
- The outcome is the product's: the loan came back by its due time. Where Twilio reports
  it (WhatsApp), also whether the message was read before the due time.
- `report` is a constant number of aggregate queries whatever the number of loans.
- `stop` ends an experiment; with a winner, its text becomes the message override.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils.translation import gettext as _

from . import stats
from .assignment import assign, bucket  # noqa: F401  (the assignment, re-exported for callers and tests)
from .messages import variant_for  # noqa: F401
from .models import Canal, Experiment, MessageOverride, NotificationLog, Statut, Variant

# Channels whose provider reports that a message was read.
READ_RECEIPT_CHANNELS = frozenset({Canal.WHATSAPP})


@dataclass(frozen=True)
class VariantResult:
    variant: Variant
    loans: int
    decided: int
    on_time: int
    read: int | None

    @property
    def pending(self) -> int:
        return self.loans - self.decided

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.decided if self.decided else None

    @property
    def on_time_interval(self) -> tuple[float, float]:
        return stats.wilson(self.on_time, self.decided)

    @property
    def read_rate(self) -> float | None:
        return self.read / self.loans if self.read is not None and self.loans else None


@dataclass(frozen=True)
class Comparison:
    """One variant against the first (the control): on-time rate difference with its 95 % interval."""

    variant: VariantResult
    control: VariantResult
    difference: float
    low: float
    high: float
    verdict: str


@dataclass(frozen=True)
class Report:
    experiment: Experiment
    results: list[VariantResult]
    comparisons: list[Comparison]
    enough_data: bool
    conclusion: str
    min_loans: int
    best: Variant | None


def results_of(experiment: Experiment, *, now: datetime) -> list[VariantResult]:
    """Per variant (two queries in all): loans sent it, loans with a known outcome, on time, read before due.

    A loan's outcome is known once it is back or past its due time; it is on time when it
    came back by its (current) due time.
    """
    variants = list(experiment.variants.order_by("id"))
    returned = Q(attribution__date_retour_effective__isnull=False)
    on_time = Q(attribution__date_retour_effective__lte=F("attribution__date_retour_prevue"))
    # The read status is the last the provider reports, so the row's update time is when it came.
    read = Q(delivery_status="read", updated_at__lte=F("attribution__date_retour_prevue"))
    rows = (
        NotificationLog.objects.filter(variant__experiment=experiment, statut=Statut.ENVOYEE)
        .order_by()
        .values("variant_id")
        .annotate(
            loans=Count("attribution", distinct=True),
            decided=Count("attribution", distinct=True, filter=returned | Q(attribution__date_retour_prevue__lt=now)),
            on_time=Count("attribution", distinct=True, filter=on_time),
            read=Count("attribution", distinct=True, filter=read),
        )
    )
    by_variant = {row["variant_id"]: row for row in rows}
    reads_reported = experiment.canal in READ_RECEIPT_CHANNELS
    results = []
    for variant in variants:
        row = by_variant.get(variant.pk, {"loans": 0, "decided": 0, "on_time": 0, "read": 0})
        results.append(
            VariantResult(
                variant, row["loans"], row["decided"], row["on_time"], row["read"] if reads_reported else None
            )
        )
    return results


def compare(result: VariantResult, control: VariantResult) -> Comparison:
    difference, low, high = stats.newcombe_difference(result.on_time, result.decided, control.on_time, control.decided)
    points = {
        "variant": result.variant.label,
        "control": control.variant.label,
        "diff": f"{100 * difference:+.1f}",
        "low": f"{100 * low:+.1f}",
        "high": f"{100 * high:+.1f}",
    }
    if low > 0:
        verdict = _(
            "%(variant)s brings more loans back on time than %(control)s: %(diff)s points (95 %% interval %(low)s to %(high)s)."
        )
    elif high < 0:
        verdict = _(
            "%(variant)s brings fewer loans back on time than %(control)s: %(diff)s points (95 %% interval %(low)s to %(high)s)."
        )
    else:
        verdict = _(
            "No clear difference between %(variant)s and %(control)s: %(diff)s points, but the 95 %% interval (%(low)s to %(high)s) includes 0."
        )
    return Comparison(result, control, difference, low, high, verdict % points)


def report(experiment: Experiment, *, now: datetime) -> Report:
    """The experiment's results and what can (or cannot yet) be concluded from them."""
    min_loans = settings.EXPERIMENT_MIN_LOANS
    results = results_of(experiment, now=now)
    control, challengers = results[0], results[1:]
    comparisons = [compare(result, control) for result in challengers] if results else []
    fewest = min(results, key=lambda result: result.decided)
    enough = fewest.decided >= min_loans
    best = None
    if not enough:
        conclusion = _(
            "Not enough data to conclude: each variant needs at least %(min)d loans with a known outcome "
            "(%(label)s has %(n)d)."
        ) % {"min": min_loans, "label": fewest.variant.label, "n": fewest.decided}
    else:
        winners = [c for c in comparisons if c.low > 0]
        losers_all = all(c.high < 0 for c in comparisons)
        if winners:
            best = max(winners, key=lambda c: c.difference).variant.variant
            conclusion = _("%(label)s does better than %(control)s.") % {
                "label": best.label,
                "control": control.variant.label,
            }
        elif losers_all:
            best = control.variant
            conclusion = _("%(control)s, the original, does better than every other variant.") % {
                "control": control.variant.label
            }
        else:
            conclusion = _(
                "No variant is clearly better yet: keep the experiment running, or stop it without a winner."
            )
    return Report(experiment, results, comparisons, enough, conclusion, min_loans, best)


class AlreadyStopped(Exception):
    pass


def stop(experiment: Experiment, *, now: datetime, winner: Variant | None = None) -> None:
    """Stop the experiment; with a ``winner``, its text becomes the message override (validated as any override)."""
    if winner is not None and winner.experiment_id != experiment.pk:
        raise ValueError("the winner must be a variant of this experiment")
    with transaction.atomic():
        stopped = Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
            status=Experiment.Status.STOPPED, stopped_at=now, winner=winner
        )
        if not stopped:
            raise AlreadyStopped(experiment.pk)
        if winner is not None:
            MessageOverride.objects.update_or_create(
                type_notification=experiment.type_notification,
                canal=experiment.canal,
                language=experiment.language,
                defaults={"subject": winner.subject, "body": winner.body},
            )
    experiment.refresh_from_db()
