"""WhatsApp is opt-in (the spec's default, and WhatsApp's business policy): nobody gets it until someone ticked it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog, NotificationPreferences

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def at_ten_in_the_morning():
    """A reminder 2 h before a 3-hour loan falls in WhatsApp's quiet hours (21:00–08:00) when the test runs
    in the evening: lend at 10:00, Paris time, whatever the time the suite runs."""
    with time_machine.travel(datetime(2026, 12, 2, 10, 0, tzinfo=PARIS), tick=True):
        yield


def channels_of(loan) -> set[tuple[str, str]]:
    return set(NotificationLog.objects.filter(attribution=loan).values_list("type_notification", "canal"))


def lend_two_hours(client):
    now = timezone.now()
    return services.lend(materiel=MaterielFactory(), client=client, due=now + timedelta(hours=3), now=now)


def test_a_client_with_a_phone_but_no_preferences_is_not_messaged_on_whatsapp(
    fake_twilio, django_capture_on_commit_callbacks
):
    client = ClientFactory(phone="+33612345678", email="ada@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        loan = lend_two_hours(client)

    assert channels_of(loan) == {("CREATION", "EMAIL"), ("RAPPEL_2H", "EMAIL")}
    assert fake_twilio.requests == []


def test_after_staff_ticked_whatsapp_the_client_gets_it_and_keeps_the_2h_reminder(
    staff_client, fake_twilio, django_capture_on_commit_callbacks
):
    client = ClientFactory(phone="+33612345678", email="ada@example.org")
    staff_client.post(
        reverse("client_detail", args=[client.pk]),
        {"notifications_email": "on", "notifications_whatsapp": "on", "rappel_2h_avant": "on"},
    )
    fake_twilio.accept()

    with django_capture_on_commit_callbacks(execute=True):
        loan = lend_two_hours(client)

    assert ("CREATION", "WHATSAPP") in channels_of(loan) and ("RAPPEL_2H", "WHATSAPP") in channels_of(loan)
    assert len(fake_twilio.requests) == 1  # the confirmation; the reminder waits for its time


def test_the_defaults_are_whatsapp_off_and_the_2h_reminder_on():
    prefs = NotificationPreferences()
    assert (prefs.notifications_email, prefs.notifications_whatsapp, prefs.rappel_2h_avant) == (True, False, True)


def test_the_staff_form_says_whatsapp_needs_the_borrowers_consent(staff_client, settings):
    client = ClientFactory()
    page = staff_client.get(reverse("client_detail", args=[client.pk])).content.decode()
    assert "Only with the borrower’s consent: WhatsApp requires it." in page
    settings.LANGUAGE_CODE = "fr"
    page = staff_client.get(reverse("client_detail", args=[client.pk])).content.decode()
    assert "Uniquement avec le consentement de l’emprunteur : WhatsApp l’exige." in page
