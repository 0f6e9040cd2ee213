"""Nobody is silently unreachable: per kind of message, which channels reach a borrower and why not."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.dashboard import loan_summary
from assets.models import Attribution
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications.api import reachability, reachable_loans
from notifications.models import NotificationPreferences

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


def cell(reach, type_notification: str, canal: str):
    return next(r for t, _label, rs in reach.rows if t == type_notification for r in rs if r.canal == canal)


def test_a_phone_only_client_without_twilio_is_unreachable_and_told_why(settings):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="", phone="+33612345678")
    NotificationPreferences.objects.create(client=client, notifications_whatsapp=True)

    reach = reachability(client)

    assert reach.unreachable and reach.silent
    assert cell(reach, "CREATION", "WHATSAPP").reason == "WhatsApp not configured"
    assert cell(reach, "CREATION", "EMAIL").reason == "no email address"


def test_a_client_with_every_channel_off_still_gets_overdue_alerts_by_email(settings):
    settings.WHATSAPP_ENABLED = True
    client = ClientFactory(email="x@example.org", phone="+33612345678")
    NotificationPreferences.objects.create(client=client, notifications_email=False, notifications_whatsapp=False)

    reach = reachability(client)

    assert reach.unreachable and not reach.silent
    assert cell(reach, "CREATION", "EMAIL").reason == "opted out"
    overdue = cell(reach, "RETARD", "EMAIL")
    assert overdue.reached and overdue.last_resort
    assert reach.reached_by("RETARD") == ["EMAIL"]


def test_a_switched_off_reminder_says_so():
    client = ClientFactory()
    NotificationPreferences.objects.create(client=client, rappel_final=False)
    reach = reachability(client)
    assert cell(reach, "RAPPEL_FINAL", "EMAIL").reason == "this reminder is switched off"
    assert not reach.unreachable


@pytest.mark.parametrize("whatsapp_enabled", [False, True])
def test_the_dashboard_count_and_the_list_filter_agree_with_the_client_page(settings, staff_client, whatsapp_enabled):
    """GIVEN open loans of clients with every combination of contacts and channels,
    THEN the dashboard's unreachable count and the ?reach=none list are exactly the clients the page calls unreachable."""
    settings.WHATSAPP_ENABLED = whatsapp_enabled
    expected = set()
    for email, phone, prefs in itertools.product(
        ("", "a@example.org"), ("", "+33612345678"), (None, (False, False), (True, False), (False, True), (True, True))
    ):
        client = ClientFactory(email=email, phone=phone)
        if prefs is not None:
            NotificationPreferences.objects.create(
                client=client, notifications_email=prefs[0], notifications_whatsapp=prefs[1]
            )
        loan = AttributionFactory(client=client)
        if reachability(client).unreachable:
            expected.add(loan.pk)
    AttributionFactory(client=ClientFactory(email=""), date_retour_effective=timezone.now() + timedelta(hours=1))

    assert loan_summary(timezone.now())["counts"]["unreachable"] == len(expected)
    assert set(Attribution.objects.open().exclude(reachable_loans()).values_list("pk", flat=True)) == expected
    listed = staff_client.get(reverse("loan_list"), {"reach": "none"}).context["page"]
    assert {loan.pk for loan in listed} == expected
    assert expected  # the combinations include unreachable borrowers


def test_the_client_page_shows_the_channels_per_message(settings, staff_client):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="", phone="+33612345678")
    html = staff_client.get(reverse("client_detail", args=[client.pk])).content.decode()
    assert "WhatsApp not configured" in html and "No message can reach this client." in html


def lend(http, **data):
    return http.post(reverse("loan_lend"), data)


def due() -> str:
    return timezone.localtime(timezone.now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")


def test_lending_to_someone_no_message_reaches_asks_for_confirmation(settings, staff_client):
    settings.WHATSAPP_ENABLED = False
    settings.LEND_UNREACHABLE = "warn"
    MaterielFactory(code="CAM-100")
    client = ClientFactory(name="Phone Only", email="", phone="+33612345678")
    data = {"materiel": "CAM-100", "client": f"x · #{client.pk}", "date_retour_prevue": due()}

    response = lend(staff_client, **data)
    assert response.status_code == 200 and not Attribution.objects.exists()
    html = response.content.decode()
    assert "No message can reach Phone Only" in html and 'id="lend-anyway"' in html

    response = lend(staff_client, **data, confirm=str(ClientFactory().pk))  # confirmed for someone else
    assert response.status_code == 200 and not Attribution.objects.exists()

    response = lend(staff_client, **data, confirm=str(client.pk))
    assert response.status_code == 302 and Attribution.objects.get().client == client


def test_the_refuse_setting_turns_the_warning_into_an_error(settings, staff_client):
    settings.WHATSAPP_ENABLED = False
    settings.LEND_UNREACHABLE = "refuse"
    MaterielFactory(code="CAM-101")
    client = ClientFactory(name="Phone Only", email="", phone="+33612345678")
    response = lend(
        staff_client, materiel="CAM-101", client=f"x · #{client.pk}", date_retour_prevue=due(), confirm=str(client.pk)
    )
    assert response.status_code == 200 and not Attribution.objects.exists()
    assert "No message can reach Phone Only" in response.context["form"].errors["client"][0]


def test_a_reachable_borrower_is_lent_to_at_once(staff_client):
    MaterielFactory(code="CAM-102")
    client = ClientFactory()
    response = lend(staff_client, materiel="CAM-102", client=f"x · #{client.pk}", date_retour_prevue=due())
    assert response.status_code == 302


def test_the_lend_preview_tells_the_channels_of_the_client(settings, staff_client):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="", phone="+33612345678")
    data = staff_client.get(reverse("lend_preview"), {"client": f"x · #{client.pk}"}).json()
    assert data["client"]["ok"] is False
    assert "WhatsApp not configured" in data["client"]["message"]
    assert "Email: no email address" in data["client"]["message"]


def test_the_page_shows_one_row_when_every_kind_of_message_agrees(settings):
    settings.WHATSAPP_ENABLED = False
    assert [row[0] for row in reachability(ClientFactory(email="")).display_rows] == ["ALL"]
    client = ClientFactory()
    NotificationPreferences.objects.create(client=client, notifications_email=False)
    assert [row[0] for row in reachability(client).display_rows] == ["CREATION", "REMINDERS", "RETARD", "RESTITUTION"]
    other = ClientFactory()
    NotificationPreferences.objects.create(client=other, rappel_2h_avant=False)
    assert [row[0] for row in reachability(other).display_rows][:3] == ["CREATION", "RAPPEL_2H", "RAPPEL_J_MOINS_2"]
