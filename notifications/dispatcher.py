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

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from assets.models import Attribution, Client

from . import timeline
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

logger = logging.getLogger("radgestmat.notifications")

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


def client_channel_conditions(type_notification: str) -> dict[str, Q]:
    """`client_channels` in SQL: per channel, the condition on an `Attribution` under which its client gets it.

    The checks use these to load only loans that lack a row; keep them in step with
    `client_channels` (``test_check_selection`` compares the two on every combination).
    """
    prefs = "client__notification_preferences"
    no_prefs = Q(**{f"{prefs}__isnull": True})

    def switched_on(flag: str) -> Q:
        return no_prefs | Q(**{f"{prefs}__{flag}": True})

    phone = Q(**{f"{prefs}__phone_number__gt": ""}) | Q(client__phone__gt="")
    no_phone = (no_prefs | Q(**{f"{prefs}__phone_number": ""})) & Q(client__phone="")
    email = Q(client__email__gt="")
    whatsapp_on = switched_on("whatsapp_enabled") & phone if settings.WHATSAPP_ENABLED else NEVER
    whatsapp_off = (Q(**{f"{prefs}__whatsapp_enabled": False}) | no_phone) if settings.WHATSAPP_ENABLED else ~NEVER
    wanted = switched_on(REMINDER_FLAGS[type_notification]) if type_notification in REMINDER_FLAGS else ~NEVER
    if type_notification != TypeNotification.RETARD:
        return {Canal.WHATSAPP: wanted & whatsapp_on, Canal.EMAIL: wanted & switched_on("email_enabled") & email}
    # An overdue alert falls back to email, else WhatsApp, when the client switched both off.
    return {
        Canal.WHATSAPP: (whatsapp_on | (phone & Q(client__email=""))) if settings.WHATSAPP_ENABLED else NEVER,
        Canal.EMAIL: email & (switched_on("email_enabled") | whatsapp_off),
    }


# A condition no row meets (Django turns it into an empty result or drops it from an OR).
NEVER = Q(pk__in=[])


def audience_condition(audience: str) -> Q:
    """`audience_address` in SQL: when a staff audience of a loan gets its (email) overdue alert."""
    if audience == Audience.STAFF:
        return Q(created_by__email__gt="")
    if audience == Audience.MANAGER:
        return ~NEVER if settings.OVERDUE_MANAGER_EMAIL else NEVER
    raise ValueError(audience)


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


def expand(
    items: Iterable[Planned], *, not_before: datetime | None = None, until: datetime | None = None
) -> list[NotificationLog]:
    """One unsaved row per (planned notification, channel), at the channel's time after quiet hours.

    Rows whose channel time falls before ``not_before`` or after ``until`` are left out.
    """
    rows = []
    for item in items:
        attribution = item.attribution
        for canal in channels_for(item):
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


def enqueue(log_ids: Iterable[int]) -> None:
    """Send each row's task once the current transaction commits (ids only)."""
    ids = list(log_ids)
    if ids:
        transaction.on_commit(lambda: publish(ids))


# No publish retries (Celery's default is three): the relay re-sends what was not published.
PUBLISH_ONCE = {"max_retries": 0, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def publish(log_ids: list[int]) -> None:
    """Publish the send tasks now; when the broker is unreachable, leave the rows to the relay.

    The rows that were not published lose the redelivery time `mark_enqueued` gave them, so
    the relay's next pass enqueues them (not a redelivery delay later). Raising here instead would fail the lend,
    return or retry that planned them after it was saved (a server error for the staff
    member), and skip the other commit callbacks. One failed publish stops the batch, and
    a publish is tried once (no Celery publish retries): with a frozen Redis each try costs
    the caller the broker's socket timeout.
    """
    from kombu.exceptions import OperationalError

    from tasks import send_notification

    for index, log_id in enumerate(log_ids):
        try:
            send_notification.apply_async((log_id,), retry_policy=PUBLISH_ONCE)
        except OperationalError as error:
            logger.warning(
                "broker unreachable (%s): %d notification(s) left to the relay",
                error,
                len(log_ids) - index,
                extra={"log_ids": log_ids[index:][:20]},
            )
            forget_redelivery(log_ids[index:])
            return


def forget_redelivery(log_ids: list[int]) -> None:
    """Make unpublished waiting rows due for the relay's next pass (the database usually still answers)."""
    from django.db import DatabaseError

    try:
        NotificationLog.objects.filter(id__in=log_ids, statut=Statut.EN_ATTENTE).update(date_tentative_prochaine=None)
    except DatabaseError:
        logger.warning("could not clear the redelivery time of %d unpublished notification(s)", len(log_ids))


def cancel(queryset, *, reason: str) -> int:
    """Cancel the rows of ``queryset`` that have not been sent yet, recording why."""
    return queryset.filter(statut__in=CLAIMABLE_STATUTS).update(
        statut=Statut.ANNULEE, erreur_code="", erreur_message=reason
    )


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
            erreur_code="",
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
        mark_enqueued([row.pk], now=now)
        return row
    return None
