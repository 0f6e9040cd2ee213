"""Sending one NotificationLog row: claim it, check it still matters, send it, record the outcome.

    claim ──> still relevant? ──no──> ANNULEE (reason)
                 │ yes
                 ▼
    recipient, message, daily cap ──over cap──> EN_ATTENTE until tomorrow
                 │
                 ▼
    channel.send ──ok──> ENVOYEE
                 ├─ PermanentError ──> ECHEC_PERMANENT (+ fallback row on another channel)
                 └─ TransientError ──> ECHEC + date_tentative_prochaine, `RetryLater` for Celery;
                                       ECHEC_PERMANENT (+ fallback) after the last attempt

The claim is one conditional UPDATE, so two copies of the same task message never
send twice. The attempt count lives in the row; Celery's retry is only the mechanism.
Every failure records ``erreur_message`` and ``erreur_code``, the cause the channel's
exception carries (CAP_REACHED for a capped row); sending clears both.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q

from radgestmat.compiled import CompiledById, update_by_ids
from radgestmat.masking import mask_address, mask_email

from . import caps, digest, ics, inbound, lifecycle, outbox, reasons, recipients, timeline
from .channels import ChannelError, PermanentError, TransientError, get_channel, spec_of
from .exceptions import RetryLater
from .messages import Message, render, render_group, with_override_flag
from .models import (
    REMINDER_TYPES,
    Audience,
    Canal,
    CodeErreur,
    NotificationLog,
    Statut,
    TypeNotification,
)

logger = logging.getLogger("radgestmat.notifications")

DRY_RUN = "dry-run"
SEND_RELATED = [f"attribution__{path}" for path in outbox.PLANNING_RELATED]


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt``: exponential from the base delay, stretched by jitter."""
    base = settings.NOTIFICATION_RETRY_BASE_DELAY * 2 ** max(0, attempt - 1)
    delay = base * (1 + random.uniform(0, settings.NOTIFICATION_RETRY_JITTER))
    return min(delay, settings.NOTIFICATION_RETRY_MAX_DELAY)


# CREATION, RESTITUTION and PROLONGATION rows are scheduled by the web's clock, which may run a little ahead of
# the database's (``now`` here, `radgestmat.clock`): a row due within this margin counts as due.
CLAIM_CLOCK_SKEW = timedelta(minutes=1)


def claim(log_id: int, *, now: datetime | None = None) -> bool:
    """Take the row for this worker (with its group, `claim_group`); False when it was not ours to take."""
    return bool(claim_group(log_id, now=now)[0])


def claim_group(log_id: int, *, now: datetime | None = None) -> tuple[list[int], datetime]:
    """Take the row and the rest of its group (`notifications.digest`): (the ids taken, the claim's time).
    The ids are [] when another task got there first, the row no longer waits, or it is not due yet (a
    message left over from before the row was re-armed to a later time: the relay sends it when its time
    comes). ``now`` None: the database's clock (`radgestmat.clock`)."""
    return digest.claim(log_id, now=now, skew=CLAIM_CLOCK_SKEW)


def irrelevance(log: NotificationLog, *, now: datetime) -> dict | None:
    """Why this row should no longer be sent (the fields that say so), or None when it should."""
    attribution = log.attribution
    kind = log.type_notification
    lapsed = timeline.lapse_reason(
        kind,
        returned=not attribution.is_open,
        due=attribution.date_retour_prevue,
        duree=attribution.duree,
        now=now,
    )
    if lapsed:
        return {**reasons.reason(lapsed), "erreur_message": ""}
    if log.audience != Audience.CLIENT:
        return None
    if kind == TypeNotification.REPONSE:
        # The borrower wrote to us on this channel: the answer goes there whatever their preferences
        # (the STOP confirmation included), within WhatsApp's window.
        text = inbound.reply_lapse_reason(log, now=now)
        return {"reason_code": "", "reason_params": None, "erreur_message": text} if text else None
    prefs = recipients.preferences_of(attribution.client)
    if kind in REMINDER_TYPES and not recipients.wants(prefs, kind):
        return {**reasons.reason("REMINDER_OFF"), "erreur_message": ""}
    if (
        kind != TypeNotification.RETARD
        and log.fallback_of_id is None
        and not getattr(prefs, spec_of(log.canal).preference_flag)
    ):
        return {**reasons.reason("CHANNEL_OFF", canal=log.canal), "erreur_message": ""}
    return None


def _finish(log: NotificationLog, *, group: list[NotificationLog] | None = None, **fields) -> None:
    """Record an outcome on ``log``, or on every row of ``group`` (one message sent for them all)."""
    rows = group or [log]
    # Only rows we still hold: never overwrite what someone else decided meanwhile.
    ids = [row.pk for row in rows]
    if any(hasattr(value, "resolve_expression") for value in fields.values()):
        NotificationLog.objects.filter(pk__in=ids, statut=Statut.EN_COURS).update(**fields)
    else:
        update_by_ids(NotificationLog, ids, only={"statut": Statut.EN_COURS}, values=fields)
    for row in rows:
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(row, name, value)


def _redirect(canal: str, to: str, message: Message) -> tuple[str, Message, bool]:
    """Apply the operators' safety rails: (address, message, dry_run)."""
    email_target, phone_target = settings.NOTIFICATION_REDIRECT_EMAIL, settings.NOTIFICATION_REDIRECT_PHONE
    if settings.NOTIFICATION_DRY_RUN:
        return to, message, True
    if not (email_target or phone_target):
        return to, message, False
    target = email_target if canal == Canal.EMAIL else phone_target
    if not target:
        # Redirect mode is on but this channel has no test address: never reach the real person.
        return to, message, True
    if canal == Canal.EMAIL:
        message = replace(message, subject=f"[→ {mask_email(to)}] {message.subject}")
    return target, message, False


def _emit(log: NotificationLog, outcome: str, started: float, provider_id: str = "", detail: str = "") -> None:
    logger.info(
        "notification %s %s/%s to %s: %s%s",
        log.pk,
        log.type_notification,
        log.canal,
        mask_address(log.destinataire) or "-",
        outcome,
        f" ({detail})" if detail else "",
        extra={
            "log_id": log.pk,
            "attribution_id": log.attribution_id,
            "type": log.type_notification,
            "channel": log.canal,
            "status": outcome,
            "attempt": log.nb_tentatives,
            "duration_ms": round((time.monotonic() - started) * 1000),
            "provider_id": provider_id,
        },
    )


def _fail_permanently(
    group: list[NotificationLog],
    reason: str,
    code: str,
    *,
    now: datetime,
    fallback: bool,
    gave_up_after: int = 0,
    why: dict | None = None,
) -> None:
    """``reason`` is the channel's or provider's text, kept as received; what we add goes in the reason fields."""
    why = why or {}
    with transaction.atomic():
        for log in group:
            params = dict(why.get("reason_params") or {})
            if gave_up_after:
                params["gave_up_after"] = gave_up_after
            replacement = lifecycle.fall_back(log, now=now) if fallback else None
            if replacement is not None:
                params.update(fallback_canal=replacement.canal, fallback_id=replacement.pk)
            _finish(
                log,
                statut=Statut.ECHEC_PERMANENT,
                erreur_code=code,
                erreur_message=reason,
                reason_code=why.get("reason_code", ""),
                reason_params=params or None,
                date_tentative_prochaine=None,
                destinataire=group[0].destinataire,
            )


# Sends the provider accepted whose ENVOYEE this process could not write before the soft time limit
# (the database away for a minute: a network cut), by row id: written by this process's next task.
_unrecorded_sends: dict[int, dict] = {}


def record_late_sends() -> int:
    """Write the ENVOYEE of the sends in `_unrecorded_sends`; returns how many were written.

    Meanwhile the relay may have taken the row's claim for a dead worker's: an email marked
    ambiguous before its final "." is given up (ECHEC_PERMANENT, AMBIGUOUS), any other put back
    for a resend (ECHEC, WORKER_STOPPED). Either way it went out: it becomes ENVOYEE, and a row
    put back is not resent. A row another task has claimed since, or that ended otherwise, is left.
    """
    written = 0
    for log_id, fields in list(_unrecorded_sends.items()):
        try:
            written += NotificationLog.objects.filter(
                Q(statut=Statut.EN_COURS)
                | Q(statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.AMBIGUOUS)
                | Q(statut=Statut.ECHEC, erreur_code=CodeErreur.WORKER_STOPPED),
                pk=log_id,
            ).update(**fields)
        except (OperationalError, InterfaceError):
            return written  # still away: the next task tries again
        del _unrecorded_sends[log_id]
        logger.info("notification %s: its send recorded late", log_id, extra={"log_id": log_id, "status": "ENVOYEE"})
    return written


def send_notification(log_id: int, *, now: datetime | None = None) -> str | None:
    """Send the row ``log_id`` once. Returns its new statut, or None when it was not ours to send.

    ``now`` None: the database's clock, read by the claim (a worker's task). Raises `RetryLater`
    after recording a transient failure that has attempts left.
    """
    started = time.monotonic()
    if _unrecorded_sends:
        record_late_sends()
    ids, now = claim_group(log_id, now=now)
    if not ids:
        logger.info(
            "notification %s not claimed: already handled or gone",
            log_id,
            extra={"log_id": log_id, "status": "skipped", "duration_ms": 0},
        )
        return None
    try:
        return _send_claimed(log_id, ids, now=now, started=started)
    except (OperationalError, InterfaceError):
        # The database went away before the provider was called (after it, outcomes are written
        # patiently): nothing was sent, so put the row back for the retry instead of stranding it
        # EN_COURS, which the relay would take for a send that may have gone out.
        _patiently(lambda: _release(ids), log_id, started, "could not be put back after a database error")
        raise


def send_now(log: NotificationLog, *, now: datetime) -> bool:
    """Send ``log`` in this process through `send_notification` (claim, attempts, audit), then refresh it.

    True when it is ENVOYEE. A transient failure stays recorded as ECHEC with its retry time,
    and the relay retries it; this returns False then. For the spec's entry points
    (`assets.email_service`, `assets.whatsapp_service`) and the test scripts.
    """
    with contextlib.suppress(RetryLater):
        send_notification(log.pk, now=now)
    log.refresh_from_db()
    return log.statut == Statut.ENVOYEE


def _release(log_ids: list[int]) -> None:
    NotificationLog.objects.filter(pk__in=log_ids, statut=Statut.EN_COURS).update(
        statut=Statut.EN_ATTENTE, nb_tentatives=F("nb_tentatives") - 1, date_claimed=None
    )


# The send's one read: the rows with their loan, item, borrower, preferences and lender, and what the
# message needs to know (an override or experiment to apply, the loan's extension count for the .ics).
load_for_sending = CompiledById(
    lambda ids: (
        ics.with_extension_count(with_override_flag(NotificationLog.objects.select_related(*SEND_RELATED)))
        .filter(pk__in=ids)
        .order_by("date_scheduled", "id")
    )
)


def _send_claimed(log_id: int, ids: list[int], *, now: datetime, started: float) -> str:
    """Send the claimed rows ``ids`` (``log_id`` and the rest of its group) as one message."""
    rows = load_for_sending(ids)
    own = {row.pk: row for row in rows}[log_id]
    group = []
    for row in rows:
        why = irrelevance(row, now=now)
        if why:
            # It leaves the group before anything is sent.
            _finish(row, statut=Statut.ANNULEE, erreur_code="", nb_tentatives=F("nb_tentatives") - 1, **why)
            _emit(row, Statut.ANNULEE, started, detail=why["reason_code"] or why["erreur_message"])
        else:
            group.append(row)
    if not group:
        return Statut.ANNULEE
    outcome = _send_group(group, now=now, started=started)
    return own.statut if own not in group else outcome


def _send_group(group: list[NotificationLog], *, now: datetime, started: float) -> str:
    # The first row speaks for the group: its recipient, language and provider message id.
    log = group[0]
    attempts = max(row.nb_tentatives for row in group)
    channel = get_channel(log.canal)
    provider_id = ""
    try:
        to = channel.recipient(log)
        for row in group:
            row.destinataire = to
        message = render(log, now=now) if len(group) == 1 else render_group(group, now=now)
        if log.canal == Canal.EMAIL:
            message = replace(message, attachments=ics.attachments_for(group, now=now))
        to, message, dry_run = _redirect(log.canal, to, message)
        if not dry_run and not caps.reserve(log.canal, now=now):
            resume = caps.next_window(now)
            _finish(
                log,
                group=group,
                statut=Statut.EN_ATTENTE,
                nb_tentatives=F("nb_tentatives") - 1,
                date_claimed=None,
                date_tentative_prochaine=None,
                date_scheduled=resume,
                erreur_code=CodeErreur.CAP_REACHED,
                erreur_message="",
                **reasons.reason("CAP_REACHED", cap=caps.cap_for(log.canal), canal=log.canal, until=resume),
            )
            _emit_all(group, "capped", started)
            return Statut.EN_ATTENTE
        if dry_run:
            logger.info("dry run: %s to %s: %s", log.canal, mask_address(to), message.subject or message.body[:80])
        else:
            provider_id = channel.send(log, message, to)
    except (OperationalError, InterfaceError):
        raise  # from the database, before the provider was reached (channels read it only for their settings)
    except PermanentError as error:
        reason, code, fallback = str(error), error.code, error.allows_fallback
        _patiently(
            lambda: _fail_permanently(group, reason, code, now=now, fallback=fallback),
            log.pk,
            started,
            "failed for good but could not be recorded",
        )
        _emit_all(group, Statut.ECHEC_PERMANENT, started, detail=str(error))
        return Statut.ECHEC_PERMANENT
    except Exception as error:
        if not isinstance(error, ChannelError):
            logger.exception("notification %s: unexpected error", log.pk)
        reason = str(error) if isinstance(error, TransientError) else repr(error)
        unexpected = {} if isinstance(error, TransientError) else reasons.reason("UNEXPECTED")
        code = error.code if isinstance(error, ChannelError) else CodeErreur.OTHER
        if attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
            _patiently(
                lambda: _fail_permanently(
                    group, reason, code, now=now, fallback=True, gave_up_after=attempts, why=unexpected
                ),
                log.pk,
                started,
                "failed for good but could not be recorded",
            )
            _emit_all(group, Statut.ECHEC_PERMANENT, started, detail=reason)
            return Statut.ECHEC_PERMANENT
        retry_in = retry_delay(attempts)
        _patiently(
            lambda: _finish(
                log,
                group=group,
                statut=Statut.ECHEC,
                erreur_code=code,
                erreur_message=reason,
                reason_code=unexpected.get("reason_code", ""),
                reason_params=unexpected.get("reason_params"),
                date_tentative_prochaine=now + timedelta(seconds=retry_in),
                destinataire=log.destinataire,
            ),
            log.pk,
            started,
            "failed but could not be recorded",
        )
        _emit_all(group, Statut.ECHEC, started, detail=reason)
        raise RetryLater(reason, retry_in) from error

    sent = {
        "statut": Statut.ENVOYEE,
        "date_envoi": now,
        "provider_message_id": provider_id,
        "destinataire": to,
        "delivery_status": DRY_RUN if dry_run else "",
        "variant_id": message.variant_id,
        "erreur_code": "",
        "erreur_message": "",
        "reason_code": "",
        "reason_params": None,
        "date_tentative_prochaine": None,
    }
    try:
        _patiently(
            lambda: _finish(log, group=group, **sent),
            log.pk,
            started,
            "was sent but could not be recorded: the relay may send it again",
        )
    except OutcomeNotRecorded:
        for row in group or [log]:
            _unrecorded_sends[row.pk] = sent
        raise
    _emit_all(group, Statut.ENVOYEE, started, provider_id=provider_id)
    return Statut.ENVOYEE


def _emit_all(group: list[NotificationLog], outcome: str, started: float, **kwargs) -> None:
    for row in group:
        _emit(row, outcome, started, **kwargs)


# Waits between tries at writing an outcome while the database is away.
RECORD_RETRY_DELAYS = (0.5, 1, 2)
# Left of the soft time limit when the last try is made, so the failure is logged, not cut short.
RECORD_MARGIN = 1.0


class OutcomeNotRecorded(Exception):
    """The database stayed away too long to record what happened to a claimed row (it stays EN_COURS)."""


def _patiently(write, log_id: int, started: float, failure: str) -> None:
    """Run ``write`` (one outcome of a claimed row), waiting for the database when it is restarting.

    Once the provider has been called, a lost write leaves the row EN_COURS and the relay
    takes the worker for dead: an email is sent again, a WhatsApp message given up as
    "may have gone out". So a lost connection is retried, on a new connection each time,
    until the task's soft time limit is near; then `OutcomeNotRecorded` (not a database
    error, so the row is not put back for a resend).
    """
    attempt = 0
    while True:
        try:
            write()
            return
        except (OperationalError, InterfaceError) as error:
            delay = RECORD_RETRY_DELAYS[min(attempt, len(RECORD_RETRY_DELAYS) - 1)]
            if time.monotonic() - started + delay + RECORD_MARGIN > settings.CELERY_TASK_SOFT_TIME_LIMIT:
                logger.error(
                    "notification %s %s (%s)", log_id, failure, error, extra={"log_id": log_id, "status": "unrecorded"}
                )
                raise OutcomeNotRecorded(f"notification {log_id} {failure}") from error
            logger.warning("notification %s: waiting for the database to record its outcome (%s)", log_id, error)
            connection.close()
            time.sleep(delay)
            attempt += 1
