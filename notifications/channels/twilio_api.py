"""What WhatsApp and SMS share: one Twilio client per process, the send call, and error classification."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient
from urllib3.exceptions import MaxRetryError, NewConnectionError

from assets.models import normalize_phone
from notifications.messages import Message
from notifications.models import Audience, CodeErreur, NotificationLog, TypeNotification

from .base import AmbiguousError, Channel, PermanentError, TransientError

# Twilio error codes (https://www.twilio.com/docs/api/errors) that no retry can fix, and their cause.
PERMANENT_CODES = {
    21211: ("invalid “To” phone number", CodeErreur.INVALID_RECIPIENT),
    21408: ("permission to send to this region is not enabled", CodeErreur.MISCONFIGURED),
    21610: ("the recipient has opted out (STOP)", CodeErreur.OPTED_OUT),
    21612: ("this “To” number cannot be reached from this “From” number", CodeErreur.INVALID_RECIPIENT),
    21614: ("the “To” number is not a mobile number", CodeErreur.INVALID_RECIPIENT),
    63003: ("the recipient cannot receive WhatsApp messages", CodeErreur.OPTED_OUT),
    63007: ("no WhatsApp sender for the “From” number", CodeErreur.MISCONFIGURED),
    63016: ("outside the 24-hour WhatsApp window: an approved template is required", CodeErreur.MISCONFIGURED),
}
# Rate limits and queue overflows: the same message will go through later.
TRANSIENT_CODES = {20429, 63018}
# "Authenticate": the account SID / auth token pair was refused.
AUTHENTICATION_CODE = 20003


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def cause_of_twilio_error(status: int | None, code: int | str | None) -> str:
    """The `CodeErreur` of a Twilio error code (status callbacks give it as text), with the HTTP status when known."""
    code = _int_or_none(code)
    if status == 401 or code == AUTHENTICATION_CODE:
        return CodeErreur.CREDENTIALS
    if status == 429 or code in TRANSIENT_CODES:
        return CodeErreur.RATE_LIMITED
    if code in PERMANENT_CODES:
        return PERMANENT_CODES[code][1]
    if status is not None and status >= 500:
        return CodeErreur.AMBIGUOUS
    return CodeErreur.OTHER


_local = threading.local()


class RebasedHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to ``TWILIO_API_BASE_URL`` (tests, regional endpoints) instead of api.twilio.com."""

    def __init__(self, *, base_url: str, timeout: float):
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if self.base_url:
            parts = urlsplit(url)
            url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, url, *args, **kwargs)


def status_callback_url() -> str:
    """The ``status_callback`` to give Twilio with each message (served by `notifications.webhooks`)."""
    return settings.PUBLIC_BASE_URL + reverse("twilio_status_callback")


def twilio_client() -> TwilioClient:
    """This process's Twilio client (its HTTP session keeps connections alive between messages)."""
    key = (
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_API_BASE_URL,
        settings.TWILIO_TIMEOUT,
    )
    if getattr(_local, "key", None) != key:
        http = RebasedHttpClient(base_url=settings.TWILIO_API_BASE_URL, timeout=settings.TWILIO_TIMEOUT)
        _local.client = TwilioClient(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http)
        _local.key = key
    return _local.client


def classify(error: Exception) -> Exception:
    """Map a Twilio or network failure to Transient, Permanent or Ambiguous (the one place that decides)."""
    if isinstance(error, TwilioRestException):
        detail = f"Twilio HTTP {error.status}" + (f", error {error.code}" if error.code else "") + f": {error.msg}"
        code = cause_of_twilio_error(error.status, error.code)
        if error.status == 429 or error.code in TRANSIENT_CODES:
            return TransientError(detail, code=code)
        if error.code in PERMANENT_CODES:
            return PermanentError(f"{detail} ({PERMANENT_CODES[error.code][0]})", code=code)
        if error.status >= 500:
            return AmbiguousError(
                f"{detail}. Ambiguous: Twilio may have created the message, so it is not resent "
                "(to avoid a duplicate) — check the Twilio message logs, then retry from the log page if needed."
            )
        return PermanentError(detail, code=code)
    if isinstance(error, requests.ConnectTimeout):
        return TransientError(f"Twilio unreachable (connect timeout): {error}", code=CodeErreur.PROVIDER_UNAVAILABLE)
    if isinstance(error, requests.ConnectionError):
        reason = error.args[0] if error.args else None
        if isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError):
            return TransientError(f"Twilio unreachable: {reason.reason}", code=CodeErreur.PROVIDER_UNAVAILABLE)
        return AmbiguousError(
            f"Connection to Twilio lost during the request ({error}). Ambiguous: not resent to avoid a duplicate — "
            "check the Twilio message logs."
        )
    if isinstance(error, requests.Timeout):
        return AmbiguousError(
            f"Twilio did not answer within {settings.TWILIO_TIMEOUT} s. Ambiguous: not resent to avoid a duplicate — "
            "check the Twilio message logs."
        )
    if isinstance(error, TwilioException):
        return PermanentError(f"Twilio client error: {error}", code=CodeErreur.OTHER)
    return TransientError(f"Unexpected Twilio error: {error!r}", code=CodeErreur.OTHER)


class TwilioChannel(Channel):
    """A Twilio Messages API channel; subclasses say how addresses look and which sender to use."""

    address_prefix = ""

    def sender(self) -> str:
        raise NotImplementedError

    def content_sid(self, log: NotificationLog, *, group: bool = False) -> str:
        return ""

    def origin(self, log: NotificationLog, *, group: bool = False) -> tuple[str, str]:
        """The sender and the approved template (content SID, "" for a plain body) for this row,
        or for the one message sent for its group (``group``)."""
        return self.sender(), self.content_sid(log, group=group)

    def is_configured(self) -> bool:
        return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and self.sender())

    def recipient(self, log: NotificationLog) -> str:
        if log.audience != Audience.CLIENT:
            raise PermanentError(f"{self.canal} goes to borrowers only.", code=CodeErreur.INVALID_RECIPIENT)
        if log.type_notification == TypeNotification.REPONSE and log.destinataire:
            return self.validate(log.destinataire)  # a reply answers the number that wrote
        from notifications.recipients import phone_of, preferences_of

        client = log.attribution.client
        raw = phone_of(client, preferences_of(client))
        if not raw:
            raise PermanentError("No phone number for this recipient.", code=CodeErreur.INVALID_RECIPIENT)
        return self.validate(raw)

    def validate(self, address: str) -> str:
        try:
            number = normalize_phone(address)
        except ValidationError as error:
            raise PermanentError(" ".join(error.messages), code=CodeErreur.INVALID_RECIPIENT) from error
        if not number:
            raise PermanentError("No phone number given.", code=CodeErreur.INVALID_RECIPIENT)
        return number

    def send(self, log: NotificationLog, message: Message, to: str) -> str:
        sender, content_sid = self.origin(log, group=message.is_group)
        if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and sender):
            raise PermanentError(
                f"{self.canal} is not configured (Twilio credentials or sender missing).", code=CodeErreur.MISCONFIGURED
            )
        params = {
            "to": f"{self.address_prefix}{to}",
            "from_": f"{self.address_prefix}{sender}",
            "status_callback": status_callback_url(),
        }
        if content_sid:
            params.update(content_sid=content_sid, content_variables=json.dumps(message.content_variables))
        else:
            params["body"] = message.body
        try:
            created = twilio_client().messages.create(**params)
        except Exception as error:
            raise classify(error) from error
        if getattr(created, "error_code", None):
            raise PermanentError(
                f"Twilio refused the message: error {created.error_code} {created.error_message or ''}",
                code=cause_of_twilio_error(None, created.error_code),
            )
        return created.sid
