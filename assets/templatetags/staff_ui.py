"""Small display helpers for the staff pages."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.translation import gettext as _

from assets.models import elapsed

register = template.Library()

STATUS_TONES = {
    "EN_ATTENTE": "wait",
    "EN_COURS": "wait",
    "ENVOYEE": "ok",
    "ECHEC": "warn",
    "ECHEC_PERMANENT": "bad",
    "ANNULEE": "muted",
}


@register.filter
def span(delta: timedelta | None) -> str:
    """A duration as staff say it: "45 min", "2 h 05", "3 d 4 h" (sign ignored)."""
    if delta is None:
        return ""
    minutes = int(abs(delta).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)d h %(minutes)02d") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)d min") % {"minutes": minutes}


@register.filter
def tone(statut: str) -> str:
    """CSS tone of a notification status badge."""
    return STATUS_TONES.get(statut, "muted")


@register.filter
def section(request) -> str:
    """Which main menu entry the current page belongs to."""
    name = getattr(getattr(request, "resolver_match", None), "url_name", "") or ""
    for prefix, entry in (
        ("home", "home"),
        ("loan_lend", "lend"),
        ("loan", "loans"),
        ("materiel", "materials"),
        ("client", "clients"),
        ("notification", "notifications"),
        ("delivery", "notifications"),
        ("scheduler", "scheduler"),
    ):
        if name.startswith(prefix):
            return entry
    return ""


@register.filter
def delta_to(start, end) -> timedelta | None:
    """Real time from ``start`` to ``end`` (DST-safe), for `span`."""
    if not start or not end:
        return None
    return elapsed(start, end)


@register.filter
def is_overdue(loan, now) -> bool:
    return loan.is_overdue(now)
