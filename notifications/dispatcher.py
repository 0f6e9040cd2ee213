"""The multi-channel dispatcher: who hears about a loan, on which channels, and when.

Planning turns "this loan needs a RAPPEL_2H at 15:00" into one `NotificationLog`
row per channel the recipient accepts. Rows are inserted under the unique
constraint (loan, type, channel, audience, level), so planning twice — two
checks, two beats, a retried task — never plans a notification twice. Rows whose
time has come are enqueued once the transaction commits; later ones wait in the
database for the relay (`dispatch_due_notifications`), never as ETAs in Redis.

Everything here is set-based: callers pass loans with `client`,
`client__notification_preferences` and `created_by` already joined, and planning
costs a constant number of queries however many loans it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from assets.models import Attribution, Client

from .models import (
    CLAIMABLE_STATUTS,
    REMINDER_TYPES,
    Audience,
    Canal,
    NotificationLog,
    NotificationPreferences,
    Statut,
    TypeNotification,
)

# Which preference flag switches off which reminder. Overdue alerts cannot be switched off.
REMINDER_FLAGS = {
    TypeNotification.RAPPEL_2H: "rappel_2h_avant",
    TypeNotification.RAPPEL_J_MOINS_2: "rappel_j_moins_2",
    TypeNotification.RAPPEL_J_MOINS_1: "rappel_j_moins_1",
    TypeNotification.RAPPEL_FINAL: "rappel_final",
}

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


def preferences_of(client: Client) -> NotificationPreferences:
    """The client's preferences, or the defaults when they have none (never saved)."""
    try:
        return client.notification_preferences
    except NotificationPreferences.DoesNotExist:
        return NotificationPreferences(client=client)


def phone_of(client: Client, prefs: NotificationPreferences) -> str:
    return prefs.phone_number or client.phone


def wants(prefs: NotificationPreferences, type_notification: str) -> bool:
    """Whether this person still wants this type of notification at all."""
    flag = REMINDER_FLAGS.get(type_notification)
    return flag is None or getattr(prefs, flag)


def client_channels(client: Client, type_notification: str) -> list[str]:
    """The channels a client is told on for one type, from their preferences and contacts.

    SMS is not a first choice: it is the fallback when WhatsApp fails (see `fallback_channels`).
    An overdue alert goes out even to a client who switched every channel off: by
    email if we have one, else WhatsApp.
    """
    prefs = preferences_of(client)
    if not wants(prefs, type_notification):
        return []
    phone = phone_of(client, prefs)
    channels = []
    if prefs.whatsapp_enabled and phone and settings.WHATSAPP_ENABLED:
        channels.append(Canal.WHATSAPP)
    if prefs.email_enabled and client.email:
        channels.append(Canal.EMAIL)
    if not channels and type_notification == TypeNotification.RETARD:
        if client.email:
            channels.append(Canal.EMAIL)
        elif phone and settings.WHATSAPP_ENABLED:
            channels.append(Canal.WHATSAPP)
    return channels


def audience_address(attribution: Attribution, audience: str) -> str:
    """Email address of a staff audience (the lender or the manager); empty when there is none."""
    if audience == Audience.STAFF:
        return attribution.created_by.email if attribution.created_by else ""
    if audience == Audience.MANAGER:
        return settings.OVERDUE_MANAGER_EMAIL
    return ""


def channels_for(item: Planned) -> list[str]:
    if item.audience == Audience.CLIENT:
        return client_channels(item.attribution.client, item.type_notification)
    return [Canal.EMAIL] if audience_address(item.attribution, item.audience) else []


def expand(items: Iterable[Planned]) -> list[NotificationLog]:
    """One unsaved row per (planned notification, channel)."""
    rows = []
    for item in items:
        for canal in channels_for(item):
            rows.append(
                NotificationLog(
                    attribution=item.attribution,
                    type_notification=item.type_notification,
                    canal=canal,
                    audience=item.audience,
                    niveau_escalade=item.niveau_escalade,
                    date_scheduled=item.date_scheduled,
                    duree_emprunt=item.attribution.duree,
                )
            )
    return rows


def plan(items: Sequence[Planned], *, now: datetime) -> int:
    """Insert the rows for ``items`` (skipping any already planned) and enqueue those due.

    Returns how many rows are due now and were enqueued. Constant queries.
    """
    rows = expand(items)
    if not rows:
        return 0
    with transaction.atomic():
        NotificationLog.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        due_ids = list(
            NotificationLog.objects.filter(
                attribution_id__in={row.attribution_id for row in rows},
                type_notification__in={row.type_notification for row in rows},
                statut=Statut.EN_ATTENTE,
                date_scheduled__lte=now,
                nb_tentatives=0,
            ).values_list("id", flat=True)
        )
        enqueue(due_ids)
    return len(due_ids)


def enqueue(log_ids: Iterable[int]) -> None:
    """Send each row's task once the current transaction commits (ids only)."""
    from tasks import send_notification

    ids = list(log_ids)
    if ids:
        transaction.on_commit(lambda: [send_notification.delay(log_id) for log_id in ids])


def cancel(queryset, *, reason: str) -> int:
    """Cancel the rows of ``queryset`` that have not been sent yet, recording why."""
    return queryset.filter(statut__in=CLAIMABLE_STATUTS).update(statut=Statut.ANNULEE, erreur_message=reason)


def cancel_pending_reminders(attribution: Attribution, *, reason: str) -> int:
    return cancel(
        NotificationLog.objects.filter(attribution=attribution, type_notification__in=REMINDER_TYPES), reason=reason
    )


def requeue(log_ids: Iterable[int], *, now: datetime) -> int:
    """Give failed or cancelled rows a fresh set of attempts, through the normal send path.

    The send task still claims each row first, so a row that is meanwhile being sent
    elsewhere is not sent twice.
    """
    with transaction.atomic():
        rows = NotificationLog.objects.filter(
            id__in=list(log_ids), statut__in=[Statut.ECHEC, Statut.ECHEC_PERMANENT, Statut.ANNULEE]
        )
        ids = list(rows.values_list("id", flat=True))
        NotificationLog.objects.filter(id__in=ids).update(
            statut=Statut.EN_ATTENTE,
            nb_tentatives=0,
            date_scheduled=now,
            date_tentative_prochaine=None,
            date_claimed=None,
            erreur_message="",
        )
        enqueue(ids)
    return len(ids)


def fall_back(log: NotificationLog, *, now: datetime) -> NotificationLog | None:
    """Plan the same notification on the next channel after ``log`` failed for good; None when there is none.

    For a borrower: WhatsApp → SMS (when their preferences allow SMS and Twilio SMS is
    configured) → email (when they have an address and no email row of this
    notification exists). The new row points back with ``fallback_of`` and is enqueued
    after commit. Also called by the Twilio status webhook when a message we marked
    sent is later reported undeliverable.
    """
    from .channels import get_channel

    if log.audience != Audience.CLIENT or log.canal not in (Canal.WHATSAPP, Canal.SMS):
        return None
    if NotificationLog.objects.filter(fallback_of=log).exists():
        return None  # already fell back (a status callback can report the same failure twice)
    attribution = log.attribution
    client = attribution.client
    prefs = preferences_of(client)
    candidates = []
    if log.canal == Canal.WHATSAPP and prefs.sms_enabled and phone_of(client, prefs):
        if get_channel(Canal.SMS).is_configured():
            candidates.append(Canal.SMS)
    if client.email:
        candidates.append(Canal.EMAIL)
    existing = set(
        NotificationLog.objects.filter(
            attribution=attribution,
            type_notification=log.type_notification,
            audience=log.audience,
            niveau_escalade=log.niveau_escalade,
        ).values_list("canal", flat=True)
    )
    for canal in candidates:
        if canal in existing:
            continue
        row = NotificationLog(
            attribution=attribution,
            type_notification=log.type_notification,
            canal=canal,
            audience=log.audience,
            niveau_escalade=log.niveau_escalade,
            date_scheduled=now,
            duree_emprunt=log.duree_emprunt or attribution.duree,
            fallback_of=log,
        )
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            continue  # planned meanwhile by someone else: that row will be sent, not a second one
        enqueue([row.pk])
        return row
    return None
