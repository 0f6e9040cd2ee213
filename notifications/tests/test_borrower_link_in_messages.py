"""Every borrower message carries the personal link; emails carry the RFC 8058 one-click unsubscribe headers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from assets import borrower_links
from assets.tests.conftest import forget_borrower_counters
from notifications.messages import render
from notifications.models import Audience, NotificationLog, NotificationPreferences, Statut, TypeNotification
from notifications.sending import send_notification

from .conftest import make_log

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUBLIC_BASE_URL = "https://pret.example.org"


def test_the_email_links_to_the_borrowers_page_and_offers_one_click_unsubscribe(smtp_sink):
    log = make_log("CREATION", "EMAIL", name="Camille Martin", email="camille@example.org", language="fr")

    assert send_notification(log.pk, now=timezone.now()) == Statut.ENVOYEE

    [message] = smtp_sink.messages
    page = borrower_links.borrower_url(log.attribution)
    assert page.startswith("https://pret.example.org/b/")
    assert page in message.get_body(preferencelist=("plain",)).get_content()
    assert f'href="{page}"' in message.get_body(preferencelist=("html",)).get_content()
    unsubscribe = message["List-Unsubscribe"].strip()  # a long header is folded
    assert unsubscribe == f"<{borrower_links.unsubscribe_url(log.attribution)}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # What a mail client does with them: one POST, no cookie, no CSRF token.
    forget_borrower_counters()
    response = HttpClient(enforce_csrf_checks=True).post(
        urlsplit(unsubscribe.strip("<>")).path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not NotificationPreferences.objects.get(client=log.attribution.client).rappel_2h_avant


@pytest.mark.parametrize("canal", ["WHATSAPP", "SMS"])
def test_the_refusal_notice_on_the_phone_carries_the_link(canal, fake_twilio):
    log = make_log("PROLONGATION_REFUSEE", canal, language="en")
    message = render(log, now=timezone.now())
    assert borrower_links.borrower_url(log.attribution) in message.body
    assert "refused" in message.body


def test_staff_copies_carry_no_borrower_link(staff_user):
    log = make_log("RETARD", "EMAIL", niveau_escalade=2, audience=Audience.STAFF)
    log.attribution.created_by = staff_user
    log.attribution.save()
    message = render(NotificationLog.objects.get(pk=log.pk), now=timezone.now())
    assert "/b/" not in message.body and message.unsubscribe_url == ""


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("canal", ["EMAIL", "WHATSAPP", "SMS"])
def test_the_refusal_notice_renders_in_every_channel_and_language(canal, language):
    log = make_log(TypeNotification.PROLONGATION_REFUSEE, canal, language=language)
    message = render(log, now=timezone.now())
    assert log.attribution.materiel.code in message.body
