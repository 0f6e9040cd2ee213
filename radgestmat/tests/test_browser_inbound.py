"""A borrower answers a reminder (Twilio posting signed webhooks over HTTP); staff read it on the loan page and the
dashboard in a real browser. Screenshots land in test-results/ (inbound-*.png)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assets.tests.factories import AttributionFactory, ClientFactory, StaffFactory
from notifications.models import Canal, InboundMessage, NotificationLog, NotificationPreferences, Statut
from radgestmat.testing.twilio import TWILIO_SID, FakeTwilio, inbound_message

from .test_browser import browser, log_in, page, shoot  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOKEN = "twilio-auth-token-for-tests-0123"
NUMBER = "+33611223344"


@pytest.fixture
def twilio(settings, live_server):
    import redis

    fake = FakeTwilio().up()
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.TWILIO_API_BASE_URL = fake.url
    settings.WHATSAPP_ENABLED = True
    settings.PUBLIC_BASE_URL = live_server.url
    store = redis.Redis.from_url(settings.REDIS_URL)
    for key in [*store.scan_iter("radgestmat:*inbound:*"), *store.scan_iter("radgestmat:cap:*")]:
        store.delete(key)
    yield fake
    fake.down()


def test_staff_read_the_borrowers_answers_on_the_loan_page(page, live_server, twilio, settings):  # noqa: F811
    from playwright.sync_api import expect

    settings.LANGUAGE_CODE = "fr"
    StaffFactory(username="desk")
    borrower = ClientFactory(name="Camille Martin", phone=NUMBER)
    NotificationPreferences.objects.create(client=borrower, notifications_whatsapp=True)
    loan = AttributionFactory(client=borrower, materiel__code="CAM-042", date_debut=timezone.now() - timedelta(days=2))
    webhook = f"{live_server.url}/webhooks/twilio/inbound/"

    for params in (
        inbound_message(f"whatsapp:{NUMBER}", "Prolonger", button="EXTEND"),
        inbound_message(f"whatsapp:{NUMBER}", "Je le rapporte demain, <script>alert(1)</script>"),
    ):
        assert twilio.deliver_inbound(webhook, params, token=TOKEN).status_code == 200
    assert (
        twilio.deliver_inbound(webhook, inbound_message(f"whatsapp:{NUMBER}", "STOP"), token="forged").status_code
        == 403
    )

    assert InboundMessage.objects.count() == 2
    assert NotificationLog.objects.filter(canal=Canal.WHATSAPP, statut=Statut.ENVOYEE).count() == 2
    assert len(twilio.sent) == 2

    log_in(page, live_server)
    expect(page.locator("#borrower-requests tr[data-kind=EXTEND]")).to_contain_text("CAM-042")
    shoot(page, "inbound-dashboard.png")
    page.goto(f"{live_server.url}/loans/{loan.pk}/")
    messages = page.locator("#borrower-messages li")
    expect(messages).to_have_count(2)
    expect(messages.nth(0)).to_contain_text("Demande une prolongation")
    expect(messages.nth(1)).to_contain_text("Je le rapporte demain, <script>alert(1)</script>")
    expect(messages.nth(1).locator(".badge")).to_have_text("Envoyée")
    # The replies are in the notification timeline too.
    expect(page.locator("#timeline li[data-type=REPONSE]")).to_have_count(2)
    shoot(page, "inbound-loan.png")
