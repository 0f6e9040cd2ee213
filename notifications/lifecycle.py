"""A planned row's life after planning: cancel it, requeue it, or fall back to the next channel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from assets.models import Attribution

from . import channels as channel_registry
from . import reasons
from .channels import spec_of
from .models import CLAIMABLE_STATUTS, REMINDER_TYPES, Audience, Canal, NotificationLog, Statut, TypeNotification
from .outbox import mark_enqueued
from .publishing import enqueue
from .recipients import address_of, preferences_of


def cancel(queryset, *, reason: str = "", code: str = "", **params) -> int:
    """Cancel the rows of ``queryset`` that have not been sent yet, recording why.

    Why is a code of `notifications.reasons` with its parameters (translated when shown); a
    ``reason`` text is kept as written, for callers that have no code for it.
    """
    why = reasons.reason(code, **params) if code else {"reason_code": "", "reason_params": None}
    return queryset.filter(statut__in=CLAIMABLE_STATUTS).update(
        statut=Statut.ANNULEE, erreur_code="", erreur_message=reason, **why
    )


def cancel_pending_reminders(attribution: Attribution, *, reason: str = "", code: str = "") -> int:
    return cancel(
        NotificationLog.objects.filter(attribution=attribution, type_notification__in=REMINDER_TYPES),
        reason=reason,
        code=code,
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
            reason_code="",
            reason_params=None,
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
    if log.audience != Audience.CLIENT or spec_of(log.canal).address != "phone":
        return None
    if log.type_notification == TypeNotification.REPONSE:
        return None  # a reply answers on the channel the borrower wrote on, or not at all
    if NotificationLog.objects.filter(fallback_of=log).exists():
        return None  # already fell back (a status callback can report the same failure twice)
    attribution = log.attribution
    client = attribution.client
    prefs = preferences_of(client)
    candidates = [
        spec.canal
        for spec in channel_registry.REGISTRY
        if spec.fallback_after == log.canal
        and getattr(prefs, spec.preference_flag)
        and address_of(spec, client, prefs)
        and spec.is_configured()
    ]
    if client.email:
        candidates.append(Canal.EMAIL)  # the last resort of a phone channel
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
