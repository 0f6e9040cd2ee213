"""The loan page's account of each reminder's send time: learned (from how many reminders) or the rule."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from notifications.models import Audience, NotificationLog, SendTimeChoice

register = template.Library()

Why = SendTimeChoice.Why


@register.simple_tag
def send_time_choices(loan) -> dict[str, SendTimeChoice]:
    """The loan's send time choices by reminder type (one query)."""
    return {choice.type_notification: choice for choice in SendTimeChoice.objects.filter(attribution=loan)}


def _clock(moment) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


def _percent(rate: float | None) -> int:
    return round(100 * (rate or 0))


def describe(choice: SendTimeChoice) -> str:
    """One line, e.g. "learned: 12:30, from 14 reminders of this borrower (…)" or "rule: 08:00, not enough data"."""
    values = {
        "time": _clock(choice.chosen_at),
        "rule": _clock(choice.rule_at),
        "n": choice.evidence,
        "scope": choice.get_scope_display(),
        "rate": _percent(choice.expected_on_time),
        "rule_rate": _percent(choice.rule_on_time),
        "min": settings.SEND_TIME_MIN_REMINDERS,
    }
    if choice.why == Why.LEARNED:
        return (
            ngettext(
                "learned: %(time)s, from %(n)d reminder of %(scope)s (%(rate)d %% expected on time, %(rule_rate)d %% at the rule's %(rule)s)",
                "learned: %(time)s, from %(n)d reminders of %(scope)s (%(rate)d %% expected on time, %(rule_rate)d %% at the rule's %(rule)s)",
                choice.evidence,
            )
            % values
        )
    if choice.why == Why.EXPLORING:
        return _("exploring: %(time)s instead of the rule's %(rule)s, so that other hours can be learned too") % values
    if choice.why == Why.THIN_DATA:
        return (
            ngettext(
                "rule: %(rule)s, not enough data (%(n)d reminder with a known outcome, %(min)d needed)",
                "rule: %(rule)s, not enough data (%(n)d reminders with a known outcome, %(min)d needed)",
                choice.evidence,
            )
            % values
        )
    if choice.why == Why.NO_BETTER_HOUR:
        return (
            ngettext(
                "rule: %(rule)s, no hour does better (from %(n)d reminder of %(scope)s)",
                "rule: %(rule)s, no hour does better (from %(n)d reminders of %(scope)s)",
                choice.evidence,
            )
            % values
        )
    return _("rule: %(rule)s, no other hour within the bounds") % values


@register.filter
def send_time_note(log: NotificationLog, choices: dict[str, SendTimeChoice]) -> str:
    choice = choices.get(log.type_notification) if log.audience == Audience.CLIENT else None
    return describe(choice) if choice else ""


@register.filter
def send_time_source(log: NotificationLog, choices: dict[str, SendTimeChoice]) -> str:
    choice = choices.get(log.type_notification) if log.audience == Audience.CLIENT else None
    return choice.source if choice else ""
