"""The .ics that follows the loan (notifications.ics), read back from what the SMTP server received.

Parsed with the real `icalendar` library: METHOD, UID, SEQUENCE, DTSTART with its TZID, and a
loan due across the spring DST change keeps its wall-clock time (18:00 Paris = 16:00 UTC in summer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine

from assets.services import extend, lend, record_return
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.channels.email import EmailChannel
from notifications.ics import attachments_for
from notifications.messages import Message
from notifications.models import NotificationLog, Statut

PARIS = ZoneInfo("Europe/Paris")
# Friday 27 March 2026, winter time (UTC+1); clocks go forward on Sunday 29 March.
LENT_AT = datetime(2026, 3, 27, 10, 0, tzinfo=PARIS)
DUE = datetime(2026, 3, 30, 18, 0, tzinfo=PARIS)  # summer time (UTC+2)


def calendar_parts(message) -> list:
    return [part for part in message.walk() if part.get_content_type() == "text/calendar"]


def only_event(part) -> tuple[icalendar.Calendar, icalendar.cal.Component]:
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    return calendar, events[0]


@pytest.fixture
def loan(smtp_sink, settings, django_capture_on_commit_callbacks):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="camille@example.org", language="en", name="Camille Martin")
    with time_machine.travel(LENT_AT, tick=False), django_capture_on_commit_callbacks(execute=True):
        attribution = lend(
            materiel=MaterielFactory(code="CAM-042", name="4K camera"), client=client, due=DUE, now=LENT_AT
        )
    return attribution


@pytest.mark.django_db
def test_the_loan_confirmation_carries_a_calendar_request_at_the_due_time_dst_correct(loan, smtp_sink):
    confirmation = next(m for m in smtp_sink.messages if m["Subject"].startswith("Loan confirmed"))
    (part,) = calendar_parts(confirmation)

    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == f"loan-{loan.pk}.ics"
    calendar, event = only_event(part)
    assert calendar["METHOD"] == "REQUEST"
    assert str(event["UID"]) == f"loan-{loan.pk}@example.org"
    assert event["SEQUENCE"] == 0
    start = event["DTSTART"]
    assert start.params["TZID"] == "Europe/Paris"
    assert start.dt.replace(tzinfo=None) == datetime(2026, 3, 30, 18, 0)
    assert start.dt.astimezone(UTC) == datetime(2026, 3, 30, 16, 0, tzinfo=UTC)  # summer time, not 17:00
    assert "4K camera (CAM-042)" in str(event["SUMMARY"])
    assert str(event["ATTENDEE"]) == "mailto:camille@example.org"
    # The time zone travels with the entry, with the spring change of the loan's year.
    (zone,) = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Paris"
    assert b"20260329T030000" in zone.to_ical() or b"20260329T020000" in zone.to_ical()
    row = NotificationLog.objects.get(attribution=loan, type_notification="CREATION", canal="EMAIL")
    assert row.statut == Statut.ENVOYEE


def send_as(kind: str, attribution, now: datetime) -> None:
    """Send an email of type ``kind`` for the loan through the real channel with the .ics the send path adds."""
    row = NotificationLog(attribution=attribution, type_notification=kind, canal="EMAIL", date_scheduled=now)
    message = Message(subject=f"{kind} {attribution.pk}", body="-", attachments=attachments_for([row], now=now))
    EmailChannel().send(row, message, attribution.client.email)


@pytest.mark.django_db
def test_each_extension_resends_the_entry_with_the_next_sequence_and_the_new_time(loan, smtp_sink):
    first_extension = LENT_AT + timedelta(days=1)
    with time_machine.travel(first_extension, tick=False):
        extend(loan, new_due=DUE + timedelta(days=2), now=first_extension)
        send_as("PROLONGATION", loan, first_extension)
        extend(loan, new_due=DUE + timedelta(days=2, hours=1), now=first_extension)
        send_as("PROLONGATION", loan, first_extension)

    notices = [m for m in smtp_sink.messages if m["Subject"].startswith("PROLONGATION")]
    events = [only_event(calendar_parts(m)[0])[1] for m in notices]
    assert [e["SEQUENCE"] for e in events] == [1, 2]
    assert {str(e["UID"]) for e in events} == {f"loan-{loan.pk}@example.org"}
    assert events[0]["DTSTART"].dt == datetime(2026, 4, 1, 18, 0, tzinfo=PARIS)
    assert events[1]["DTSTART"].dt.astimezone(UTC) == datetime(2026, 4, 1, 17, 0, tzinfo=UTC)
    assert calendar_parts(notices[1])[0].get_param("method") == "REQUEST"


@pytest.mark.django_db
def test_the_return_cancels_the_entry(loan, smtp_sink, django_capture_on_commit_callbacks):
    back = datetime(2026, 3, 30, 12, 0, tzinfo=PARIS)
    with time_machine.travel(back, tick=False), django_capture_on_commit_callbacks(execute=True):
        extend(loan, new_due=DUE + timedelta(hours=1), now=back)
        record_return(loan, now=back)

    receipt = next(m for m in smtp_sink.messages if "return" in m["Subject"].lower())
    (part,) = calendar_parts(receipt)
    assert part.get_param("method") == "CANCEL"
    calendar, event = only_event(part)
    assert calendar["METHOD"] == "CANCEL"
    assert str(event["UID"]) == f"loan-{loan.pk}@example.org"
    assert event["SEQUENCE"] == 2  # one extension, then the cancellation
    assert str(event["STATUS"]) == "CANCELLED"


@pytest.mark.django_db
def test_reminders_carry_no_calendar(loan, smtp_sink):
    row = NotificationLog(attribution=loan, type_notification="RAPPEL_2H", canal="EMAIL", date_scheduled=LENT_AT)
    assert attachments_for([row], now=LENT_AT) == ()
