"""Why a notification was cancelled, or what we (not the provider) say about its failure: a code and
its parameters, stored on the row (`reason_code`, `reason_params`) and put into words when shown, in
the language of the page that shows it.

`erreur_message` keeps only what a provider or a channel reported, as received; `erreur_code`
(`CodeErreur`) classifies the failure. A row can carry both: "Gave up after 3 attempts" (ours,
translated) above "421 4.7.0 Try again later" (the mail server's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .channels import REGISTRY as CHANNEL_REGISTRY

# code -> sentence; %(name)s are the row's `reason_params`. Codes are stored: never rename one.
REASONS: dict[str, Any] = {
    "LOAN_RETURNED": _("Loan returned before this notification was sent."),
    "REMINDER_AFTER_RETURN": _("Loan returned before this reminder was sent."),
    "ALERT_AFTER_RETURN": _("Loan returned before this overdue alert was sent."),
    "ALREADY_DUE": _("The loan was already due when this reminder could be sent."),
    "CLASS_CHANGED": _("The loan's duration class changed: this reminder no longer applies."),
    "PAST_ITS_DAY": _("This reminder's day had passed when it could be sent: it would have named the wrong day."),
    "REMINDER_OFF": _("The borrower switched this reminder off."),
    "CHANNEL_OFF": _("The borrower switched %(canal)s off."),
    "NO_LONGER_RELEVANT": _("No longer relevant when its time came (loan returned, due time passed or class changed)."),
    "DUE_MOVED": _("The due date moved from %(old)s to %(new)s."),
    "NOTICE_REPLACED": _("A later extension of this loan replaced this notice."),
    "NOTICE_AFTER_RETURN": _("Loan returned before this extension notice was sent."),
    "CANCELLED_BY": _("Cancelled by %(user)s."),
    "CAP_REACHED": _("Daily cap of %(cap)s %(canal)s messages reached; waits until %(until)s."),
    "TWILIO_STATUS": _("Twilio reported the message %(status)s: error %(error)s."),
    "WORKER_STOPPED": _("The worker sending this notification stopped before finishing."),
    "AMBIGUOUS_TWILIO": _(
        "The worker stopped while sending through Twilio: the message may have gone out, so it is "
        "not resent (no duplicate). Check Twilio's message logs."
    ),
    "AMBIGUOUS_EMAIL": _(
        "The worker stopped while waiting for the mail server to accept the message: it may have gone "
        "out, so it is not resent (no duplicate). Check the mail server's logs."
    ),
    "UNEXPECTED": _("Unexpected error."),
}
# Parameters holding a moment (ISO 8601): shown in the page's date format and time zone.
DATETIME_PARAMS = ("old", "new", "until")


def reason(code: str, **params: Any) -> dict[str, Any]:
    """The fields to write for reason ``code``: ``.update(**reason("DUE_MOVED", old=..., new=...))``."""
    assert code in REASONS, code
    return {"reason_code": code, "reason_params": {k: stored(v) for k, v in params.items()}}


def stored(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def shown(name: str, value: Any) -> Any:
    if name == "canal":
        return next((str(spec.label) for spec in CHANNEL_REGISTRY if spec.canal == value), value)
    if name in DATETIME_PARAMS and isinstance(value, str):
        moment = parse_datetime(value)
        if moment is not None:
            return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")
    return value


def sentence(code: str, params: dict[str, Any] | None) -> str:
    """``code`` in words in the active language; "" for no code, the code itself for an unknown one."""
    if not code:
        return ""
    template = REASONS.get(code)
    if template is None:
        return code
    params = params or {}
    try:
        return str(template) % {name: shown(name, value) for name, value in params.items()}
    except (KeyError, TypeError, ValueError):
        return str(template)


def fallback_sentence(params: dict[str, Any] | None) -> str:
    params = params or {}
    if not params.get("fallback_id"):
        return ""
    label = shown("canal", params.get("fallback_canal", ""))
    return str(_("Fell back to %(canal)s (notification %(id)s).") % {"canal": label, "id": params["fallback_id"]})


def gave_up_sentence(params: dict[str, Any] | None) -> str:
    attempts = (params or {}).get("gave_up_after")
    if not attempts:
        return ""
    return ngettext("Gave up after %(n)d attempt.", "Gave up after %(n)d attempts.", attempts) % {"n": attempts}


def our_words(log) -> str:
    """What we say about ``log`` (cancellation or failure), translated; the provider's text is apart."""
    params = log.reason_params or {}
    parts = [gave_up_sentence(params), sentence(log.reason_code, params), fallback_sentence(params)]
    return " ".join(part for part in parts if part)


def full_text(log) -> str:
    """Our words with the provider's text as received in their place: for one-line summaries."""
    params = log.reason_params or {}
    parts = [gave_up_sentence(params), sentence(log.reason_code, params), log.erreur_message, fallback_sentence(params)]
    return " ".join(part for part in parts if part)
