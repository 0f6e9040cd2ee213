"""Existing rows: our own English or French sentences in `erreur_message` become reason codes with
their parameters (`notifications.reasons`), so every page shows them in its own language.

The patterns are frozen here: they are the texts the previous release wrote. What no pattern
recognises (a provider's text, an edited row) stays as it is. Rows are read in batches, by id.
"""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import migrations

LOCAL_MINUTE = r"\d{4}-\d\d-\d\d \d\d:\d\d"
EXACT = {
    "Loan returned before this reminder was sent.": "REMINDER_AFTER_RETURN",
    "Prêt restitué avant l’envoi de ce rappel.": "REMINDER_AFTER_RETURN",
    "Loan returned before this overdue alert was sent.": "ALERT_AFTER_RETURN",
    "Loan returned before this notification was sent.": "LOAN_RETURNED",
    "The loan was already due when this reminder could be sent.": "ALREADY_DUE",
    "The loan's duration class changed: this reminder no longer applies.": "CLASS_CHANGED",
    "The borrower switched this reminder off.": "REMINDER_OFF",
    "No longer relevant when its time came (loan returned, due time passed or class changed).": "NO_LONGER_RELEVANT",
    "Plus pertinente quand son heure est venue (prêt restitué, échéance passée ou classe changée).": (
        "NO_LONGER_RELEVANT"
    ),
    "The worker sending this notification stopped before finishing.": "WORKER_STOPPED",
    "Le worker qui envoyait cette notification s’est arrêté avant la fin.": "WORKER_STOPPED",
    "The worker stopped while sending through Twilio: the message may have gone out, so it is "
    "not resent (no duplicate). Check Twilio's message logs.": "AMBIGUOUS_TWILIO",
    "The worker stopped while waiting for the mail server to accept the message: it may have gone "
    "out, so it is not resent (no duplicate). Check the mail server's logs.": "AMBIGUOUS_EMAIL",
}
PATTERNS = [
    ("CHANNEL_OFF", re.compile(r"^The borrower switched (?P<canal>[A-Z]+) off\.$")),
    ("DUE_MOVED", re.compile(rf"^The due date moved from (?P<old>{LOCAL_MINUTE}) to (?P<new>{LOCAL_MINUTE})\.$")),
    (
        "DUE_MOVED",
        re.compile(rf"^La date de retour est passée du (?P<old>{LOCAL_MINUTE}) au (?P<new>{LOCAL_MINUTE})\.$"),
    ),
    ("CANCELLED_BY", re.compile(r"^Cancelled by (?P<user>.+)\.$")),
    ("CANCELLED_BY", re.compile(r"^Annulée par (?P<user>.+)\.$")),
    (
        "CAP_REACHED",
        re.compile(r"^Daily cap of (?P<cap>\d+) (?P<canal>[A-Z]+) messages reached; waits until (?P<until>\S+)\.$"),
    ),
    ("TWILIO_STATUS", re.compile(r"^Twilio reported the message (?P<status>\w+): error (?P<error>[^ ]*)\.$")),
]
FELL_BACK = re.compile(
    r"^(?P<rest>.*?) ?Fell back to (?P<fallback_canal>[A-Z]+) \(notification (?P<fallback_id>\d+)\)\.$", re.S
)
GAVE_UP = re.compile(r"^Gave up after (?P<n>\d+) attempts: (?P<rest>.*)$", re.S)
UNEXPECTED = re.compile(r"^Unexpected error: (?P<rest>.*)$", re.S)
BATCH = 2000


def aware(local_minute: str) -> str:
    return datetime.strptime(local_minute, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(settings.TIME_ZONE)).isoformat()


def convert(text: str) -> tuple[str, dict, str] | None:
    """(reason code, params, what stays in erreur_message), or None when nothing is recognised."""
    params: dict = {}
    rest = text
    match = FELL_BACK.match(rest)
    if match:
        params.update(fallback_canal=match["fallback_canal"], fallback_id=int(match["fallback_id"]))
        rest = match["rest"]
    match = GAVE_UP.match(rest)
    if match:
        params["gave_up_after"] = int(match["n"])
        rest = match["rest"]
    code = ""
    match = UNEXPECTED.match(rest)
    if match:
        code, rest = "UNEXPECTED", match["rest"]
    elif rest in EXACT:
        code, rest = EXACT[rest], ""
    else:
        for candidate, pattern in PATTERNS:
            match = pattern.match(rest)
            if match:
                code, rest = candidate, ""
                found = match.groupdict()
                for name in ("old", "new"):
                    if name in found:
                        found[name] = aware(found[name])
                if "cap" in found:
                    found["cap"] = int(found["cap"])
                params.update(found)
                break
    if not code and not params:
        return None
    return code, params, rest


def forwards(apps, schema_editor):
    NotificationLog = apps.get_model("notifications", "NotificationLog")
    last = 0
    while True:
        rows = list(
            NotificationLog.objects.filter(id__gt=last, reason_code="")
            .exclude(erreur_message="")
            .order_by("id")
            .only("id", "erreur_message")[:BATCH]
        )
        if not rows:
            return
        last = rows[-1].id
        changed = []
        for row in rows:
            converted = convert(row.erreur_message)
            if converted:
                row.reason_code, row.reason_params, row.erreur_message = converted
                row.reason_params = row.reason_params or None
                changed.append(row)
        NotificationLog.objects.bulk_update(changed, ["reason_code", "reason_params", "erreur_message"])


class Migration(migrations.Migration):
    dependencies = [("notifications", "0015_reason_codes")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
