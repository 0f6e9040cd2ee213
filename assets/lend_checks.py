"""What the desk should know before lending to a borrower: can any message reach them, how they returned before.

Warnings, not rules: staff confirm and lend anyway, except an unreachable borrower with
``LEND_UNREACHABLE = "refuse"``. Who is reachable is decided by `notifications.api.reachability`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from notifications.api import Reachability, reachability

from .models import Attribution, Client, overdue_at


def months_before(moment: datetime, months: int) -> datetime:
    """The same local day and time ``months`` calendar months earlier (the last day of a shorter month)."""
    local = timezone.localtime(moment)
    month_index = local.year * 12 + local.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for day in range(local.day, 0, -1):
        try:
            return local.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def borrower_history(client: Client, now: datetime) -> dict[str, int]:
    """Open loans overdue now, and loans returned late since ``LEND_WARN_LATE_MONTHS`` ago: one query."""
    since = months_before(now, settings.LEND_WARN_LATE_MONTHS)
    return Attribution.objects.filter(client=client).aggregate(
        overdue=Count("id", filter=Q(date_retour_effective__isnull=True) & overdue_at(now)),
        late_returns=Count(
            "id",
            filter=Q(date_retour_effective__gte=since, date_retour_effective__gt=F("date_retour_prevue")),
        ),
    )


@dataclass
class LendCheck:
    reach: Reachability
    warnings: list[str] = field(default_factory=list)
    refusal: str = ""  # set when the loan must not be made (LEND_UNREACHABLE = "refuse")


def check_borrower(client: Client, now: datetime) -> LendCheck:
    reach = reachability(client)
    check = LendCheck(reach)
    if reach.unreachable:
        if reach.silent:
            text = _("No message can reach %(name)s: they will hear nothing about this loan.") % {"name": client.name}
        else:
            text = _(
                "No confirmation or reminder can reach %(name)s: only overdue alerts will go out. "
                "Check their contact details and channels."
            ) % {"name": client.name}
        if settings.LEND_UNREACHABLE == "refuse":
            check.refusal = text
        else:
            check.warnings.append(text)
    history = borrower_history(client, now)
    if history["overdue"]:
        check.warnings.append(
            ngettext(
                "%(name)s has %(n)d overdue item now.",
                "%(name)s has %(n)d overdue items now.",
                history["overdue"],
            )
            % {"name": client.name, "n": history["overdue"]}
        )
    if settings.LEND_WARN_LATE_RETURNS and history["late_returns"] >= settings.LEND_WARN_LATE_RETURNS:
        check.warnings.append(
            ngettext(
                "%(name)s returned late %(n)d time in the last %(months)d months.",
                "%(name)s returned late %(n)d times in the last %(months)d months.",
                history["late_returns"],
            )
            % {"name": client.name, "n": history["late_returns"], "months": settings.LEND_WARN_LATE_MONTHS}
        )
    return check
