"""Twilio's webhooks: message status callbacks (what happened to a WhatsApp/SMS after Twilio accepted
it) and inbound messages (what a borrower sent us, acted on by `notifications.inbound`).

Twilio signs each callback with the account's auth token over the exact URL it
called plus the POST parameters. Behind a proxy the URL Django sees is not the
one Twilio called, so the signature is checked against ``PUBLIC_BASE_URL`` + path:
an unsigned, forged or replayed-to-another-URL request gets 403 and changes nothing.

Callbacks can arrive out of order and more than once: a status never moves a row
backwards (``delivered`` then a late ``sent`` stays ``delivered``); ``delivered``
and ``read`` are final, so a later ``failed``/``undelivered`` changes nothing and
starts no fallback (the borrower has the message). A
delivery failure (``failed``/``undelivered``, e.g. 63016 outside the WhatsApp
session window) makes the row a permanent failure and starts the fallback
exactly once. A group of rows sent as one message shares its MessageSid: each report
applies to every row of the group.

An inbound message is signature-checked the same way; a forged one gets 403 and
changes nothing, a replayed one (the same MessageSid) is acted on only the first time.
The answer to Twilio is an empty TwiML document: replies go out through the send
path (`NotificationLog`), not as TwiML.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from . import inbound, lifecycle, reasons
from .channels.twilio_api import cause_of_twilio_error
from .models import NotificationLog, Statut

logger = logging.getLogger("radgestmat.notifications")

# Twilio's MessageStatus values in the order a message goes through them.
PROGRESS = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "read": 5}
DELIVERY_FAILURES = frozenset({"failed", "undelivered"})
# Once Twilio saw the message reach the handset, no later report can take that back.
DELIVERED = frozenset({"delivered", "read"})


def is_signed_by_twilio(request: HttpRequest) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.TWILIO_AUTH_TOKEN:
        return False
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature)


def moves_forward(current: str, new: str) -> bool:
    if current in DELIVERY_FAILURES:
        return False
    if current in DELIVERED and new in DELIVERY_FAILURES:
        return False
    if new in DELIVERY_FAILURES:
        return True
    return PROGRESS.get(new, -1) > PROGRESS.get(current, -1)


def record_delivery_status(message_sid: str, status: str, error_code: str, *, now) -> NotificationLog | None:
    """Apply one status report to the rows sent as ``message_sid`` — one row, or every row of a group
    sent as one message (`notifications.digest`); returns the first row, or None if unknown."""
    with transaction.atomic():
        rows = list(NotificationLog.objects.select_for_update().filter(provider_message_id=message_sid).order_by("id"))
        for log in rows:
            _apply(log, status, error_code, now=now)
    return rows[0] if rows else None


def _apply(log: NotificationLog, status: str, error_code: str, *, now) -> None:
    if not moves_forward(log.delivery_status, status):
        return
    log.delivery_status = status
    fields = ["delivery_status", "updated_at"]
    if status in DELIVERY_FAILURES:
        why = reasons.reason("TWILIO_STATUS", status=status, error=error_code or "?")
        replacement = lifecycle.fall_back(log, now=now)
        if replacement is not None:
            why["reason_params"].update(fallback_canal=replacement.canal, fallback_id=replacement.pk)
        log.statut = Statut.ECHEC_PERMANENT
        log.erreur_code = cause_of_twilio_error(None, error_code)
        log.erreur_message = ""
        log.reason_code, log.reason_params = why["reason_code"], why["reason_params"]
        fields += ["statut", "erreur_code", "erreur_message", "reason_code", "reason_params"]
    log.save(update_fields=fields)


@csrf_exempt
@require_POST
def twilio_status_callback(request: HttpRequest) -> HttpResponse:
    if not is_signed_by_twilio(request):
        logger.warning("twilio status callback refused: bad or missing signature")
        return HttpResponseForbidden("invalid signature")
    sid = request.POST.get("MessageSid", "")
    status = request.POST.get("MessageStatus", "").lower()
    error_code = request.POST.get("ErrorCode", "")
    log = record_delivery_status(sid, status, error_code, now=timezone.now()) if sid and status else None
    logger.info(
        "twilio status callback",
        extra={
            "provider_id": sid,
            "delivery_status": status,
            "error_code": error_code,
            "log_id": log.pk if log else None,
            "attribution_id": log.attribution_id if log else None,
        },
    )
    return HttpResponse(status=204)


EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@csrf_exempt
@require_POST
def twilio_inbound_message(request: HttpRequest) -> HttpResponse:
    if not is_signed_by_twilio(request):
        logger.warning("twilio inbound message refused: bad or missing signature")
        return HttpResponseForbidden("invalid signature")
    message = inbound.Inbound.from_post(request.POST)
    if message is None:
        logger.info("twilio inbound webhook without a message SID or a phone number: ignored")
    else:
        inbound.receive(message, now=timezone.now())
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
