"""The outbox: planned notifications become `NotificationLog` rows, inserted or re-armed, and enqueued when due.

Planning turns "this loan needs a RAPPEL_2H at 15:00" into one `NotificationLog`
row per channel the recipient accepts (`recipients`). Rows are inserted under the
unique constraint (loan, type, channel, audience, level), so planning twice — two
planning jobs, two beats, a retried task — never plans a notification twice. Rows
whose time has come are published once the transaction commits (`publishing`);
later ones wait in the database for the relay (`dispatch_due_notifications`),
never as ETAs in Redis.

Everything here is set-based: callers pass loans with `client`,
`client__notification_preferences` and `created_by` already joined, and planning
costs a constant number of queries however many loans it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from assets.models import Attribution

from . import timeline
from .models import Audience, NotificationLog, Statut
from .publishing import enqueue
from .recipients import channels_for

# Loans passed to `plan` must come with these joined, or planning costs a query per loan.
PLANNING_RELATED = ("client__notification_preferences", "created_by", "materiel")


@dataclass(frozen=True)
class Planned:
    """One notification to plan for one loan, before it is split into channels."""

    attribution: Attribution
    type_notification: str
    date_scheduled: datetime
    niveau_escalade: int = 0
    audience: str = Audience.CLIENT
    previous_due: datetime | None = None


def expand(
    items: Iterable[Planned], *, not_before: datetime | None = None, until: datetime | None = None
) -> list[NotificationLog]:
    """One unsaved row per (planned notification, channel), at the channel's time after quiet hours.

    Rows whose channel time falls before ``not_before`` or after ``until`` are left out.
    """
    rows = []
    for item in items:
        attribution = item.attribution
        for canal in channels_for(attribution, item.type_notification, item.audience):
            when = timeline.channel_time(
                item.type_notification,
                canal,
                item.date_scheduled,
                date_debut=attribution.date_debut,
                date_retour_prevue=attribution.date_retour_prevue,
            )
            if when is None or (not_before is not None and when < not_before) or (until is not None and when > until):
                continue
            rows.append(
                NotificationLog(
                    attribution=attribution,
                    type_notification=item.type_notification,
                    canal=canal,
                    audience=item.audience,
                    niveau_escalade=item.niveau_escalade,
                    date_scheduled=when,
                    duree_emprunt=attribution.duree,
                    previous_due=item.previous_due,
                )
            )
    return rows


def plan(
    items: Sequence[Planned], *, now: datetime, not_before: datetime | None = None, until: datetime | None = None
) -> int:
    """Insert the rows for ``items`` (skipping any already planned) and enqueue those due.

    ``not_before`` / ``until`` bound the channel times planned (see `expand`).
    Returns how many rows are due now and were enqueued. Constant queries.
    """
    rows = expand(items, not_before=not_before, until=until)
    if not rows:
        return 0
    # Checks re-plan the same rows run after run: look before inserting, so that costs a read, not a write.
    planned = set(
        NotificationLog.objects.filter(
            attribution_id__in={row.attribution_id for row in rows},
            type_notification__in={row.type_notification for row in rows},
        ).values_list("attribution_id", "type_notification", "canal", "audience", "niveau_escalade")
    )
    rows = [row for row in rows if row_key(row) not in planned]
    if not rows:
        return 0
    with transaction.atomic():
        NotificationLog.objects.bulk_create(rows, ignore_conflicts=True)
        return enqueue_due_of(rows, now=now)


def row_key(row: NotificationLog) -> tuple:
    return (row.attribution_id, row.type_notification, row.canal, row.audience, row.niveau_escalade)


def rearm(items: Sequence[Planned], *, now: datetime, not_before: datetime | None = None, insert: bool = True) -> int:
    """Plan ``items`` again after the loan changed: reset the existing rows of the same key, insert the others.

    The unique constraint allows one row per (loan, type, channel, audience, level),
    so a reminder for a new due date reuses the row of the old one — cancelled,
    failed, or even sent for the old date — and starts it afresh. A row being sent
    right now (EN_COURS) is left alone. With ``insert=False`` only existing rows are
    reset. Returns how many rows are due now and were enqueued. Constant queries.
    """
    rows = expand(items, not_before=not_before)
    if not rows:
        return 0

    with transaction.atomic():
        existing = {
            row_key(row): row
            for row in NotificationLog.objects.select_for_update().filter(
                attribution_id__in={row.attribution_id for row in rows},
                type_notification__in={row.type_notification for row in rows},
            )
        }
        fresh, reset = [], []
        for row in rows:
            old = existing.get(row_key(row))
            if old is None:
                fresh.append(row)
            elif old.statut != Statut.EN_COURS:
                old.statut = Statut.EN_ATTENTE
                old.date_scheduled = row.date_scheduled
                old.duree_emprunt = row.duree_emprunt
                old.nb_tentatives = 0
                old.date_envoi = old.date_tentative_prochaine = old.date_claimed = None
                old.erreur_code = old.erreur_message = old.provider_message_id = old.delivery_status = ""
                old.reason_code, old.reason_params = "", None
                old.updated_at = now
                reset.append(old)
        if insert and fresh:
            NotificationLog.objects.bulk_create(fresh, ignore_conflicts=True)
        if reset:
            NotificationLog.objects.bulk_update(reset, RESET_FIELDS)
        return enqueue_due_of(rows, now=now)


RESET_FIELDS = [
    "statut",
    "date_scheduled",
    "duree_emprunt",
    "nb_tentatives",
    "date_envoi",
    "date_tentative_prochaine",
    "date_claimed",
    "erreur_code",
    "erreur_message",
    "reason_code",
    "reason_params",
    "provider_message_id",
    "delivery_status",
    "updated_at",
]


def enqueue_due_of(rows: Sequence[NotificationLog], *, now: datetime) -> int:
    """Enqueue the waiting rows among the loans/types of ``rows`` that are due and not enqueued yet."""
    due = NotificationLog.objects.filter(
        attribution_id__in={row.attribution_id for row in rows},
        type_notification__in={row.type_notification for row in rows},
        statut=Statut.EN_ATTENTE,
        date_scheduled__lte=now,
        date_tentative_prochaine__isnull=True,
    )
    return mark_enqueued(list(due.values_list("id", flat=True)), now=now)


def mark_enqueued(log_ids: Sequence[int], *, now: datetime) -> int:
    """Enqueue waiting rows and note when the relay may enqueue them again if no worker claims them.

    For a waiting row, ``date_tentative_prochaine`` is that redelivery time; the send
    task claims the row long before it in a healthy system.
    """
    if not log_ids:
        return 0
    redeliver_at = now + timedelta(minutes=settings.RELAY_REDELIVER_MINUTES)
    NotificationLog.objects.filter(id__in=log_ids).update(date_tentative_prochaine=redeliver_at)
    enqueue(log_ids)
    return len(log_ids)
