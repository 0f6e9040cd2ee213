"""Log output that is safe to ship and easy to search.

- `radgestmat.masking` hides most of a borrower's contact details; call it when
  you put a recipient in a log line on purpose.
- `MaskPersonalData` is a logging filter on every handler: whatever slipped into a
  message or an ``extra`` field, phone numbers and email addresses leave masked.
- `JsonFormatter` writes one JSON object per line (``LOG_FORMAT=json``) with every
  ``extra`` field (log_id, attribution_id, channel, status, ...), so one loan can be
  followed across web, beat and workers with a log search.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from datetime import datetime, timezone
from typing import Any

from radgestmat.masking import mask_email, mask_phone

# Broken addresses too ("a@@b.org", "a@localhost"): bad input is personal data all the same.
EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@+[\w-]+(?:\.[\w-]+)*")
# Celery names its nodes "name@this-host"; they are not anyone's address and operators need them.
NODE_HOSTS = {socket.gethostname(), socket.gethostname().partition(".")[0]}
# International numbers (E.164, maybe with separators) and French national ones; not dates or ids.
PHONE_RE = re.compile(r"(?<![\w+])(?:\+\d[\d .-]{7,16}\d|0[1-9](?:[ .-]?\d{2}){4})(?![\w])")

# scheme://user:password@host — the password (or a lone token) of a URL, whatever its scheme (redis, postgres, amqp…).
URL_CREDENTIALS_RE = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s]*):(?P<password>[^/?#@\s]+)@", re.I
)
# An address or number in a percent-encoded query string is personal data too.
PERCENT_ENCODED = {"%40": "@", "%2B": "+", "%2b": "+"}
PERCENT_ENCODED_RE = re.compile("|".join(PERCENT_ENCODED))

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def mask_email_match(match: re.Match) -> str:
    address = match.group(0)
    return address if address.rpartition("@")[2] in NODE_HOSTS else mask_email(address.replace("@@", "@"))


def one_line(text: str) -> str:
    """CR and LF from data escaped, so that a name or an address can never forge a log line of its own."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def mask_url_credentials(text: str) -> str:
    """``redis://:s3cret@host`` → ``redis://:********@host``: the password of every URL in ``text`` hidden."""
    return URL_CREDENTIALS_RE.sub(lambda m: f"{m['scheme']}{m['user']}:********@", text)


def mask_personal_data(text: str) -> str:
    """Every URL password, email address and phone number in ``text``, masked."""
    text = mask_url_credentials(text)
    text = PERCENT_ENCODED_RE.sub(lambda m: PERCENT_ENCODED[m.group(0)], text)
    text = EMAIL_RE.sub(mask_email_match, text)
    return PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)


class MaskPersonalData(logging.Filter):
    """Masks contact details in the message and in string ``extra`` fields before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        record.msg = one_line(mask_personal_data(message))
        record.args = None
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, one_line(mask_personal_data(value)))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, host, pid and every ``extra`` field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hostname = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "host": self.hostname,
            "pid": os.getpid(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = mask_personal_data(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING dict: plain text (default) or JSON lines, personal data masked either way."""
    formatter = "json" if log_format == "json" else "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "mask_personal_data": {"()": "radgestmat.logging.MaskPersonalData"},
            "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {"()": "radgestmat.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "filters": ["mask_personal_data"],
            },
            # Server errors to ADMINS: masked, no credentials, rate-limited (radgestmat.error_emails).
            "mail_admins": {
                "class": "radgestmat.error_emails.ThrottledAdminEmailHandler",
                "level": "ERROR",
                "filters": ["require_debug_false", "mask_personal_data"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Replaces Django's default handlers of these loggers (an unmasked console when DEBUG,
            # an unmasked, unthrottled mail_admins): their lines reach the root's masked console.
            "django": {"handlers": ["mail_admins"], "level": level, "propagate": True},
            "django.server": {"handlers": [], "level": level, "propagate": True},
            # The Twilio client logs every request and response header at INFO (about ten lines a message).
            "twilio.http_client": {"level": "WARNING"},
        },
    }
