"""Email through Django's mail framework (SMTP in production): text + HTML, one reused connection per process."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import smtplib
import socket
import threading
import time
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email

from assets.validators import one_line
from notifications.messages import Message
from notifications.models import Audience, CodeErreur, NotificationLog
from notifications.recipients import audience_address
from radgestmat.compiled import update_by_ids

from .base import AmbiguousError, Channel, PermanentError, TransientError
from .smtp_backend import EndOfDataUnanswered

_local = threading.local()
GROUP_HEADER = "X-RadGestMat-Notifications"


def message_id_local_part(log: NotificationLog) -> str:
    """Short enough for provider_message_id, traceable to the row, and the same for every attempt at one send.

    When a worker dies after the SMTP server accepted a message but before the row
    was marked sent, the relay sends it again: the repeated Message-ID lets mail
    systems drop the copy. A re-armed reminder (new scheduled time) gets a new one.
    Keyed by SECRET_KEY so that two deployments sending from one domain never share an ID.
    """
    if log.pk is None:  # a test message (send_test_notification) has no row
        return f"rgm.0.{secrets.token_hex(8)}"
    seed = f"{log.pk}:{log.date_scheduled.isoformat()}".encode()
    return f"rgm.{log.pk}.{hmac.new(settings.SECRET_KEY.encode(), seed, hashlib.sha256).hexdigest()[:16]}"


def _connection_key() -> tuple:
    return (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_HOST_USER)


def shared_connection():
    """This process's open mail connection, opened on first use and reopened when the server dropped it.

    SMTP servers close idle connections: one left idle for EMAIL_NOOP_AFTER_IDLE seconds or more
    gets a NOOP before a message starts on it. A connection in steady use skips that round trip;
    if the server dropped it anyway, `EmailChannel.send` notices before DATA and sends once more
    on a new connection.
    """
    key = _connection_key()
    connection = getattr(_local, "connection", None)
    if connection is not None and _local.key == key:
        smtp = getattr(connection, "connection", None)
        if smtp is None or time.monotonic() - getattr(_local, "used_at", 0.0) < settings.EMAIL_NOOP_AFTER_IDLE:
            return connection
        try:
            if smtp.noop()[0] == 250:
                return connection
        except (smtplib.SMTPException, OSError):
            pass
        drop_connection()
    connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
    connection.open()
    _local.connection, _local.key = connection, key
    return connection


def _send_on_shared_connection(email: EmailMultiAlternatives, rows: list[int]) -> int:
    connection = shared_connection()
    smtp = getattr(connection, "connection", None)
    if smtp is not None:
        smtp.data_started = False
        if rows:
            smtp.before_end_of_data = lambda: mark_maybe_accepted(rows)
    try:
        return connection.send_messages([email])
    except smtplib.SMTPServerDisconnected as error:
        # Whether DATA had begun: only a message the server never started to receive may go again.
        error.data_started = smtp is None or getattr(smtp, "data_started", True)  # type: ignore[attr-defined]
        raise


def drop_connection() -> None:
    connection = getattr(_local, "connection", None)
    _local.connection = None
    if connection is not None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close; we drop it either way
            connection.close()


# SMTP answers that mean the server refused our login (530 authentication required,
# 534 mechanism too weak, 535 credentials invalid): every message will fail until they are fixed.
CREDENTIALS_REPLIES = {530, 534, 535}
# Mailbox unavailable, not local, or name not allowed.
BAD_RECIPIENT_REPLIES = {550, 551, 553}


def _cause_of_reply(code: int, *, sender: bool = False) -> CodeErreur:
    if code in CREDENTIALS_REPLIES:
        return CodeErreur.CREDENTIALS
    if 400 <= code < 500:
        return CodeErreur.PROVIDER_UNAVAILABLE
    if code in BAD_RECIPIENT_REPLIES:
        # A refused MAIL FROM is our sender address (DEFAULT_FROM_EMAIL), not the borrower's.
        return CodeErreur.MISCONFIGURED if sender else CodeErreur.INVALID_RECIPIENT
    return CodeErreur.OTHER


def classify(error: Exception) -> Exception:
    """Map an SMTP/socket failure to TransientError or PermanentError and its cause (the one place that decides)."""
    if isinstance(error, EndOfDataUnanswered):
        return AmbiguousError(
            f"The mail server did not answer the end of the message ({error}): it may have accepted it, "
            "so it is not resent (no duplicate). Check the mail server's logs."
        )
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        detail = "; ".join(
            f"{code} {message.decode(errors='replace') if isinstance(message, bytes) else message}"
            for code, message in error.recipients.values()
        )
        if codes and all(400 <= code < 500 for code in codes):
            return TransientError(
                f"Recipient temporarily refused by the mail server: {detail}", code=CodeErreur.PROVIDER_UNAVAILABLE
            )
        # Some servers ask for the login only at RCPT ("530 5.7.0 Authentication required").
        code = CodeErreur.CREDENTIALS if CREDENTIALS_REPLIES.intersection(codes) else CodeErreur.INVALID_RECIPIENT
        return PermanentError(f"Recipient refused by the mail server: {detail}", code=code)
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        text = f"Mail server answered {error.smtp_code} {message}"
        code = _cause_of_reply(error.smtp_code, sender=isinstance(error, smtplib.SMTPSenderRefused))
        return TransientError(text, code=code) if 400 <= error.smtp_code < 500 else PermanentError(text, code=code)
    if isinstance(error, (smtplib.SMTPServerDisconnected, socket.timeout, TimeoutError)):
        return TransientError(
            f"Mail server connection lost or timed out: {error}", code=CodeErreur.PROVIDER_UNAVAILABLE
        )
    if isinstance(error, (ConnectionError, OSError)):
        return TransientError(f"Mail server unreachable: {error}", code=CodeErreur.PROVIDER_UNAVAILABLE)
    if isinstance(error, smtplib.SMTPException):
        return TransientError(f"Mail server error: {error}", code=CodeErreur.OTHER)
    return TransientError(f"Unexpected mail error: {error!r}", code=CodeErreur.OTHER)


def mark_maybe_accepted(log_ids: list[int]) -> None:
    """Note on the claimed rows (one message, several for a group) that the server may accept the message
    from now on: if this worker dies before the reply, the relay gives them up as ambiguous instead of
    sending them again."""
    from notifications.models import Statut

    update_by_ids(
        NotificationLog, log_ids, only={"statut": Statut.EN_COURS}, values={"erreur_code": CodeErreur.AMBIGUOUS}
    )


def calendar_part(attachment) -> MIMEText:
    """An .ics as calendar clients want it: text/calendar with its METHOD parameter, as an attachment."""
    base, _sep, params = attachment.content_type.partition(";")
    part = MIMEText(attachment.content, base.split("/", 1)[1], "utf-8")
    for param in params.split(";"):
        name, _eq, value = param.strip().partition("=")
        if name:
            part.set_param(name, value)
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    return part


class EmailChannel(Channel):
    canal = "EMAIL"

    def is_configured(self) -> bool:
        return bool(settings.EMAIL_BACKEND)

    def recipient(self, log: NotificationLog) -> str:
        if log.audience == Audience.CLIENT:
            address = log.attribution.client.email
        else:
            address = audience_address(log.attribution, log.audience)
        if not (address or "").strip():
            raise PermanentError("No email address for this recipient.", code=CodeErreur.INVALID_RECIPIENT)
        return self.validate(address)

    def validate(self, address: str) -> str:
        address = address.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise PermanentError(
                f"Invalid email address “{address[:100]}”.", code=CodeErreur.INVALID_RECIPIENT
            ) from None
        return address

    def send(self, log: NotificationLog, message: Message, to: str) -> str:
        name = log.attribution.client.name if log.audience == Audience.CLIENT else ""
        # formataddr encodes the display name; one line first keeps CR/LF out of the header.
        recipient = formataddr((one_line(name), to)) if one_line(name) else to
        sender_name, sender_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
        local_id = message_id_local_part(log)
        message_id = f"<{local_id}@{sender_address.rpartition('@')[2] or 'localhost'}>"
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body,
            from_email=formataddr((sender_name or settings.ORGANISATION_NAME, sender_address)),
            to=[recipient],
            reply_to=[settings.ORGANISATION_REPLY_TO] if settings.ORGANISATION_REPLY_TO else None,
            headers={"Message-ID": message_id, "X-RadGestMat-Notification": str(log.pk or "")},
        )
        if message.unsubscribe_url:
            # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to the address.
            email.extra_headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            email.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if message.is_group:
            # Every row the message is sent for: the drills' ledger, and a trace in the mail server's logs.
            email.extra_headers[GROUP_HEADER] = ",".join(str(pk) for pk in message.log_ids)
        if message.html:
            email.attach_alternative(message.html, "text/html")
        for attachment in message.attachments:
            email.attach(calendar_part(attachment))
        rows = (list(message.log_ids) or [log.pk]) if log.pk is not None else []
        try:
            try:
                sent = _send_on_shared_connection(email, rows)
            except smtplib.SMTPServerDisconnected as error:
                if getattr(error, "data_started", True):
                    raise
                # The kept connection had been dropped before any of the message went out: a new one.
                drop_connection()
                sent = _send_on_shared_connection(email, rows)
        except Exception as error:
            drop_connection()
            raise classify(error) from error
        _local.used_at = time.monotonic()
        if not sent:
            raise TransientError("The mail backend did not send the message.", code=CodeErreur.OTHER)
        return local_id
