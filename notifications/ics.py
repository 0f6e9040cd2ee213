"""The calendar entry that follows a loan: an .ics (iCalendar, RFC 5545 / iTIP RFC 5546) sent with its emails.

- A loan confirmation (CREATION) carries ``METHOD:REQUEST``: one event at the due time.
- An extension notice (PROLONGATION) re-sends it with the new due time and
  ``SEQUENCE`` = the number of the loan's due-date changes (`assets.models.LoanEvent`, kind EXTENDED), so
  the calendar replaces the old entry instead of adding one.
- The return receipt (RESTITUTION) sends ``METHOD:CANCEL`` with the next SEQUENCE.

The UID is the loan's, so every message updates the same entry. The due time is
written with ``TZID`` = the site's time zone and its ``VTIMEZONE`` (DST rules for the
years around the loan), so a loan due across a DST change keeps its wall-clock time.
The event is built at send time from the loan as it is then, never from a copy.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import translation
from django.utils.translation import gettext as _

from assets.models import Attribution, LoanEvent
from assets.validators import one_line

from .messages import Attachment, language_of
from .models import Audience, NotificationLog, TypeNotification

METHODS: dict[str, str] = {
    TypeNotification.CREATION: "REQUEST",
    TypeNotification.PROLONGATION: "REQUEST",
    TypeNotification.RESTITUTION: "CANCEL",
}
# A calendar event needs a length; the return itself takes a moment.
EVENT_LENGTH = timedelta(minutes=15)
PRODID = "-//RadGestMat//Loans//EN"


def uid_of(attribution: Attribution) -> str:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "radgestmat"
    return f"loan-{attribution.pk}@{domain}"


def with_extension_count(queryset):
    """Rows loaded with ``extension_count``, their loan's number of extensions (the send's own query)."""
    count = (
        LoanEvent.objects.filter(attribution_id=OuterRef("attribution_id"), kind=LoanEvent.Kind.EXTENDED)
        .values("attribution_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return queryset.annotate(extension_count=Coalesce(Subquery(count), 0))


def extension_counts(rows: list[NotificationLog]) -> dict[int, int]:
    """How many times each row's loan was extended: from `with_extension_count`, else one query."""
    if all(hasattr(row, "extension_count") for row in rows):
        return {row.attribution_id: getattr(row, "extension_count") for row in rows}  # noqa: B009  # an annotation
    return dict(
        LoanEvent.objects.filter(attribution_id__in={row.attribution_id for row in rows}, kind=LoanEvent.Kind.EXTENDED)
        .values("attribution_id")
        .annotate(n=Count("id"))
        .values_list("attribution_id", "n")
    )


def calendar_for(attribution: Attribution, *, method: str, sequence: int, now: datetime, language: str) -> str:
    zone = ZoneInfo(settings.TIME_ZONE)
    due = attribution.date_retour_prevue.astimezone(zone)
    materiel = f"{one_line(attribution.materiel.name)} ({one_line(attribution.materiel.code)})"
    organisation = one_line(settings.ORGANISATION_NAME)
    with translation.override(language):
        summary = _("Return %(materiel)s") % {"materiel": materiel}
        description = _("Loan of %(materiel)s from %(organisation)s: bring it back by this time.") % {
            "materiel": materiel,
            "organisation": organisation,
        }
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", uid_of(attribution))
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(ZoneInfo("UTC")))
    event.add("dtstart", due)
    event.add("dtend", due + EVENT_LENGTH)
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "TRANSPARENT")
    sender_name, sender_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    if sender_address:
        event.add("organizer", f"mailto:{sender_address}", parameters={"CN": sender_name or organisation})
    email = (attribution.client.email or "").strip()
    if email:
        event.add(
            "attendee",
            f"mailto:{email}",
            parameters={"CN": one_line(attribution.client.name), "ROLE": "REQ-PARTICIPANT", "RSVP": "FALSE"},
        )
    calendar.add_component(event)
    # The VTIMEZONE goes before the event that refers to it, as calendar clients expect.
    head, begin, rest = calendar.to_ical().decode().partition("BEGIN:VEVENT\r\n")
    return head + timezone_block(settings.TIME_ZONE, due.year) + begin + rest


@functools.lru_cache(maxsize=16)
def timezone_block(name: str, year: int) -> str:
    """The serialised VTIMEZONE of ``name`` with the DST rules of the years around ``year`` (enough for
    any calendar, and short). It is the same for every loan due that year, and deriving it from the tz
    database and serialising it was more than half of an .ics's cost: done once per process and year."""
    zone = icalendar.Timezone.from_tzinfo(
        ZoneInfo(name), first_date=date(year - 1, 1, 1), last_date=date(year + 2, 1, 1)
    )
    return zone.to_ical().decode()


def attachments_for(group: list[NotificationLog], *, now: datetime) -> tuple[Attachment, ...]:
    """The .ics files to send with the email for ``group`` (one per loan), or () for other types."""
    first = group[0]
    method = METHODS.get(first.type_notification)
    if method is None or first.audience != Audience.CLIENT:
        return ()
    language = language_of(first)
    counts = extension_counts(group)
    files = []
    for row in group:
        attribution = row.attribution
        sequence = counts.get(attribution.pk, 0) + (1 if method == "CANCEL" else 0)
        files.append(
            Attachment(
                filename=f"loan-{attribution.pk}.ics",
                content=calendar_for(attribution, method=method, sequence=sequence, now=now, language=language),
                content_type=f"text/calendar; method={method}",
            )
        )
    return tuple(files)
