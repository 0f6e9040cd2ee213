"""What borrowers send us on WhatsApp and SMS (Twilio's inbound message webhook), and what it does.

    inbound message ──> known number? ──no──> nothing (logged, masked)
                          │ yes
                          ▼
        STOP / ARRET / UNSUBSCRIBE…  ──> that channel off for that number, confirmed by one reply
        START / REPRENDRE…           ──> that channel back on, confirmed by one reply
        button EXTEND[:<loan id>]    ──> `request_extension` (the loan's timeline), acknowledged
        button RETURNED[:<loan id>]  ──> "borrower says returned" note for staff, acknowledged
        anything else                ──> the loan's timeline for staff, acknowledged

Each message is an `InboundMessage`, unique on Twilio's MessageSid: the same webhook
twice (Twilio retrying, or a replay) acts once. Replies are `NotificationLog` rows of type
REPONSE, sent by the usual send path on the channel the borrower wrote on; on WhatsApp a
reply is free-form, so it goes out only within the 24-hour customer-service window opened
by the borrower's message (`reply_lapse_reason`). docs/inbound.md has the Twilio console side.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from assets import services
from assets.models import Attribution, Client, ExtensionRequest, normalize_phone
from assets.validators import CONTROL_CHARACTER, TEXT_LAYOUT
from radgestmat.input import parse_id
from radgestmat.masking import mask_phone

from .channels import spec_of
from .models import Canal, InboundMessage, NotificationLog, NotificationPreferences, Statut, TypeNotification
from .outbox import mark_enqueued

logger = logging.getLogger("radgestmat.notifications")

Kind = InboundMessage.Kind

# Twilio's standard opt-out and opt-in keywords (Advanced Opt-Out's defaults), and their French words.
# A message is one of them when it is that single word, whatever its case, accents and punctuation.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "ARRET"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "REPRENDRE"})

# The ids of the reminder template's quick-reply buttons (docs/inbound.md), optionally ":<loan id>".
BUTTON_KINDS = {"EXTEND": Kind.EXTEND, "RETURNED": Kind.RETURNED}

# WhatsApp allows a free-form reply this long after the borrower's last message.
WHATSAPP_SESSION_WINDOW = timedelta(hours=24)
BODY_MAX_CHARS = 1600  # Twilio's limit for one message
RATE_WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class Inbound:
    """The fields of one Twilio inbound webhook we act on."""

    message_sid: str
    canal: str  # Canal.WHATSAPP or Canal.SMS
    number: str  # E.164, without "whatsapp:"
    body: str
    button_payload: str = ""
    replied_to_sid: str = ""  # OriginalRepliedMessageSid: the message of ours a WhatsApp reply answers

    @classmethod
    def from_post(cls, data) -> Inbound | None:
        """Read a webhook's POST; None when it is not a message from a phone number we could answer."""
        sid = plain_text(data.get("MessageSid") or data.get("SmsMessageSid") or "").strip()
        sender = (data.get("From") or "").strip()
        canal = Canal.WHATSAPP if sender.startswith("whatsapp:") else Canal.SMS
        try:
            number = normalize_phone(sender.removeprefix("whatsapp:"))
        except ValidationError:
            number = ""
        if not (sid and number) or len(sid) > 64:
            return None
        return cls(
            message_sid=sid,
            canal=canal,
            number=number,
            body=plain_text(data.get("Body") or "")[:BODY_MAX_CHARS],
            button_payload=plain_text(data.get("ButtonPayload") or "").strip()[:200],
            replied_to_sid=plain_text(data.get("OriginalRepliedMessageSid") or "").strip()[:64],
        )


def plain_text(text: str) -> str:
    """``text`` without control characters but line breaks and tabs (PostgreSQL refuses NUL; the rest is invisible)."""
    return CONTROL_CHARACTER.sub(lambda match: match.group() if match.group() in TEXT_LAYOUT else "", text)


def keyword(text: str) -> str:
    """``text`` as a keyword: one word, upper case, without accents or punctuation ("Arrêt !" → "ARRET")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = re.sub(r"[^\w\s]|_", "", "".join(char for char in decomposed if not unicodedata.combining(char)))
    words = plain.split()
    return words[0].upper() if len(words) == 1 else ""


def classify(message: Inbound) -> tuple[str, int | None]:
    """The kind of ``message``, and the loan id a button named (None when it named none)."""
    if message.button_payload:
        name, _, loan_id = message.button_payload.partition(":")
        kind = BUTTON_KINDS.get(name.strip().upper())
        if kind is not None:
            return kind, parse_id(loan_id.strip())
    word = keyword(message.body)
    if word in STOP_WORDS:
        return Kind.STOP, None
    if word in START_WORDS:
        return Kind.START, None
    return Kind.TEXT, None


def clients_with_number(number: str) -> list[Client]:
    return list(
        Client.objects.filter(Q(phone=number) | Q(notification_preferences__phone_number=number))
        .distinct()
        .order_by("pk")
    )


def loan_of(message: Inbound, clients: list[Client], named_loan_id: int | None) -> Attribution | None:
    """Which loan a message is about, among the sender's loans.

    The loan a button names; else the loan of the message of ours it replies to; else the
    loan of the last message we sent to that number, while it is open; else the sender's
    most recent open loan; else that last message's loan, or their most recent loan.
    """
    theirs = Attribution.objects.filter(client__in=clients)
    if named_loan_id is not None:
        named = theirs.filter(pk=named_loan_id).first()
        if named is not None:
            return named
    sent = NotificationLog.objects.filter(attribution__client__in=clients)
    if message.replied_to_sid:
        replied = sent.filter(provider_message_id=message.replied_to_sid).select_related("attribution").first()
        if replied is not None:
            return replied.attribution
    last_sent = (
        sent.filter(destinataire=message.number, statut=Statut.ENVOYEE, date_envoi__isnull=False)
        .exclude(type_notification=TypeNotification.REPONSE)
        .select_related("attribution")
        .order_by("-date_envoi", "-id")
        .first()
    )
    if last_sent is not None and last_sent.attribution.is_open:
        return last_sent.attribution
    latest_open = theirs.open().order_by("-date_debut", "-id").first()
    if latest_open is not None:
        return latest_open
    if last_sent is not None:
        return last_sent.attribution
    return theirs.order_by("-date_debut", "-id").first()


def admit(number: str) -> bool:
    """Count one message from ``number``; False past ``INBOUND_RATE_LIMIT_PER_HOUR`` (the cache steps aside if down)."""
    key = f"inbound:{number}"
    try:
        if cache.add(key, 1, RATE_WINDOW_SECONDS):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, RATE_WINDOW_SECONDS)
                count = 1
    except Exception:
        logger.warning("inbound rate limit: cache unreachable, not limiting", exc_info=True)
        return True
    return count <= settings.INBOUND_RATE_LIMIT_PER_HOUR


def set_channel(clients: list[Client], canal: str, on: bool) -> None:
    """Switch ``canal`` on or off in the preferences of each client (creating them with the defaults)."""
    flag = spec_of(canal).preference_flag
    for client in clients:
        prefs, _created = NotificationPreferences.objects.get_or_create(client=client)
        if getattr(prefs, flag) != on:
            setattr(prefs, flag, on)
            prefs.save(update_fields=[flag, "updated_at"])


def request_extension(inbound: InboundMessage, *, now: datetime) -> None:
    """The borrower pressed "Prolonger": the one place that turns it into an extension request.

    The request goes through `assets.services.request_extension` with the default time
    (`EXTENSION_DEFAULT_HOURS`): within the rules it waits for staff (or is granted at once);
    a request the rules refuse is logged and stays, as this `InboundMessage`, on the loan page
    for staff. docs/borrower-page.md has the rules.
    """
    logger.info(
        "borrower asks for an extension",
        extra={"attribution_id": inbound.attribution_id, "inbound_id": inbound.pk},
    )
    if inbound.attribution is None:
        return
    source = ExtensionRequest.Source.SMS if inbound.canal == Canal.SMS else ExtensionRequest.Source.WHATSAPP
    try:
        services.request_extension(inbound.attribution, now=now, source=source)
    except ValidationError as refused:
        logger.info(
            "extension request refused by the rules: %s",
            "; ".join(refused.messages),
            extra={"attribution_id": inbound.attribution_id, "inbound_id": inbound.pk},
        )


def plan_reply(inbound: InboundMessage, *, now: datetime) -> NotificationLog | None:
    """The reply to ``inbound`` on its channel, due now and enqueued after commit; None without a loan."""
    if inbound.attribution_id is None:
        return None  # a NotificationLog belongs to a loan: a client who never borrowed gets no reply
    assert inbound.attribution is not None
    reply = NotificationLog.objects.create(
        attribution=inbound.attribution,
        type_notification=TypeNotification.REPONSE,
        canal=inbound.canal,
        destinataire=inbound.from_number,  # the number that wrote (`TwilioChannel.recipient`)
        date_scheduled=now,
        duree_emprunt=inbound.attribution.duree,
    )
    inbound.reply = reply
    inbound.save(update_fields=["reply"])
    mark_enqueued([reply.pk], now=now)
    return reply


def receive(message: Inbound, *, now: datetime) -> InboundMessage | None:
    """Act on one inbound message once; returns what was recorded (None: unknown, replayed or over the limit)."""
    if InboundMessage.objects.filter(message_sid=message.message_sid).exists():
        logger.info(
            "inbound message %s already handled", message.message_sid, extra={"provider_id": message.message_sid}
        )
        return None
    clients = clients_with_number(message.number)
    if not clients:
        logger.info(
            "inbound %s message from unknown number %s ignored",
            message.canal,
            mask_phone(message.number),
            extra={"provider_id": message.message_sid, "channel": message.canal},
        )
        return None
    kind, named_loan_id = classify(message)
    admitted = admit(message.number)
    if not admitted:
        logger.warning(
            "inbound messages from %s over the rate limit: %s",
            mask_phone(message.number),
            "STOP honoured, no reply" if kind == Kind.STOP else "ignored",
            extra={"provider_id": message.message_sid, "channel": message.canal},
        )
        if kind != Kind.STOP:
            return None
    loan = loan_of(message, clients, named_loan_id)
    try:
        with transaction.atomic():
            inbound = InboundMessage.objects.create(
                message_sid=message.message_sid,
                canal=message.canal,
                from_number=message.number,
                client=loan.client if loan is not None else clients[0],
                attribution=loan,
                kind=kind,
                body=message.body,
                button_payload=message.button_payload,
                received_at=now,
            )
            if kind in (Kind.STOP, Kind.START):
                set_channel(clients, message.canal, on=kind == Kind.START)
            elif kind == Kind.EXTEND:
                request_extension(inbound, now=now)
            if admitted:
                plan_reply(inbound, now=now)
    except IntegrityError:
        return None  # the same MessageSid, handled meanwhile by a concurrent delivery of this webhook
    logger.info(
        "inbound %s message from %s: %s",
        message.canal,
        mask_phone(message.number),
        kind,
        extra={
            "provider_id": message.message_sid,
            "channel": message.canal,
            "attribution_id": inbound.attribution_id,
            "inbound_id": inbound.pk,
        },
    )
    return inbound


def reply_lapse_reason(log: NotificationLog, *, now: datetime) -> str:
    """Why a reply row should no longer be sent, or "": a WhatsApp free-form reply needs the session window."""
    inbound = InboundMessage.objects.filter(reply=log).only("received_at").first()
    if inbound is None:
        return "The borrower's message this replied to is gone."
    if log.canal == Canal.WHATSAPP and now > inbound.received_at + WHATSAPP_SESSION_WINDOW:
        return "Outside WhatsApp's 24-hour window after the borrower's message: a free-form reply is not allowed."
    return ""


def recent_requests(now: datetime, *, days: int = 7, limit: int = 10) -> list[InboundMessage]:
    """What borrowers asked of staff lately (extension, "already returned") on loans still open, and no one
    has dealt with yet: the dashboard."""
    return list(
        InboundMessage.objects.filter(
            kind__in=[Kind.EXTEND, Kind.RETURNED],
            received_at__gte=now - timedelta(days=days),
            attribution__date_retour_effective__isnull=True,
            handled_at__isnull=True,
        )
        .select_related("attribution__materiel", "client")
        .order_by("-received_at", "-id")[:limit]
    )


def messages_of(loan: Attribution) -> list[InboundMessage]:
    """The borrower's messages about ``loan``, oldest first, with their replies (the loan page)."""
    return list(InboundMessage.objects.filter(attribution=loan).select_related("reply").order_by("received_at", "id"))


def mark_handled(message: InboundMessage, *, now: datetime, by: User | AnonymousUser | None) -> bool:
    """Note that staff dealt with a borrower's request; False when someone already had."""
    return bool(
        InboundMessage.objects.filter(pk=message.pk, handled_at__isnull=True).update(
            handled_at=now, handled_by=services.person(by)
        )
    )
