"""Twilio's status callbacks: only correctly signed ones, for the exact public URL, change anything.

Signatures are computed with the real `twilio.request_validator.RequestValidator`,
as Twilio computes them, over PUBLIC_BASE_URL + path.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from twilio.request_validator import RequestValidator

from assets.tests.factories import AttributionFactory
from notifications.channels.twilio_api import status_callback_url
from notifications.models import Canal, CodeErreur, NotificationLog, Statut, TypeNotification

pytestmark = pytest.mark.django_db

TOKEN = "twilio-auth-token-for-tests-0123"
PUBLIC = "https://radgestmat.example.org"


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.ALLOWED_HOSTS = ["radgestmat.example.org", "testserver"]


@pytest.fixture
def sent_whatsapp():
    from django.utils import timezone

    return NotificationLog.objects.create(
        attribution=AttributionFactory(),
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.WHATSAPP,
        statut=Statut.ENVOYEE,
        date_scheduled=timezone.now(),
        date_envoi=timezone.now(),
        nb_tentatives=1,
        destinataire="+33612345678",
        provider_message_id="SM0123456789abcdef0123456789abcdef",
        delivery_status="queued",
    )


def params(log, status, **extra):
    return {
        "MessageSid": log.provider_message_id,
        "MessageStatus": status,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "To": "whatsapp:+33612345678",
        **extra,
    }


def post(client, data, *, signed_for: str | None = PUBLIC + "/webhooks/twilio/status/", token=TOKEN):
    headers = {}
    if signed_for is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(token).compute_signature(signed_for, data)
    return client.post(reverse("twilio_status_callback"), data, **headers)


def test_the_callback_url_given_to_twilio_is_the_public_one():
    assert status_callback_url() == "https://radgestmat.example.org/webhooks/twilio/status/"


def test_a_signed_delivered_report_updates_the_row(client, sent_whatsapp):
    response = post(client, params(sent_whatsapp, "delivered"))

    assert response.status_code == 204
    sent_whatsapp.refresh_from_db()
    assert sent_whatsapp.delivery_status == "delivered"
    assert sent_whatsapp.statut == Statut.ENVOYEE


@pytest.mark.parametrize(
    "how",
    ["unsigned", "forged", "replayed to another URL", "signed with another token", "tampered after signing"],
)
def test_an_unsigned_or_forged_report_is_refused_and_changes_nothing(client, sent_whatsapp, how):
    data = params(sent_whatsapp, "undelivered", ErrorCode="63016")
    if how == "unsigned":
        response = post(client, data, signed_for=None)
    elif how == "forged":
        response = client.post(reverse("twilio_status_callback"), data, HTTP_X_TWILIO_SIGNATURE="bm90IGEgc2lnbmF0dXJl")
    elif how == "replayed to another URL":
        response = post(client, data, signed_for="https://other.example.org/webhooks/twilio/status/")
    elif how == "signed with another token":
        response = post(client, data, token="someone-elses-token-000000000000")
    else:
        headers = {
            "HTTP_X_TWILIO_SIGNATURE": RequestValidator(TOKEN).compute_signature(
                PUBLIC + "/webhooks/twilio/status/", params(sent_whatsapp, "delivered")
            )
        }
        response = client.post(reverse("twilio_status_callback"), data, **headers)

    assert response.status_code == 403
    sent_whatsapp.refresh_from_db()
    assert (sent_whatsapp.delivery_status, sent_whatsapp.statut, sent_whatsapp.erreur_message) == (
        "queued",
        Statut.ENVOYEE,
        "",
    )


def test_without_an_auth_token_every_report_is_refused(client, settings, sent_whatsapp):
    settings.TWILIO_AUTH_TOKEN = ""
    response = post(client, params(sent_whatsapp, "delivered"))
    assert response.status_code == 403


def test_a_late_report_never_moves_a_message_backwards(client, sent_whatsapp):
    post(client, params(sent_whatsapp, "read"))
    post(client, params(sent_whatsapp, "sent"))

    sent_whatsapp.refresh_from_db()
    assert sent_whatsapp.delivery_status == "read"


def test_a_delivery_failure_becomes_a_permanent_failure_and_falls_back_to_email(
    client, sent_whatsapp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, params(sent_whatsapp, "undelivered", ErrorCode="63016"))

    assert response.status_code == 204
    sent_whatsapp.refresh_from_db()
    assert sent_whatsapp.statut == Statut.ECHEC_PERMANENT
    assert sent_whatsapp.delivery_status == "undelivered"
    assert "63016" in sent_whatsapp.reason_text
    fallback = NotificationLog.objects.get(fallback_of=sent_whatsapp)
    assert (fallback.canal, fallback.statut) == (Canal.EMAIL, Statut.EN_ATTENTE)
    assert f"Fell back to Email (notification {fallback.pk})" in sent_whatsapp.reason_text
    assert len(callbacks) == 1  # the email is enqueued once the callback's transaction commits


def test_the_same_failure_reported_twice_falls_back_once(client, sent_whatsapp):
    post(client, params(sent_whatsapp, "failed", ErrorCode="63016"))
    post(client, params(sent_whatsapp, "failed", ErrorCode="63016"))
    post(client, params(sent_whatsapp, "undelivered", ErrorCode="63016"))

    assert NotificationLog.objects.filter(fallback_of=sent_whatsapp).count() == 1


def test_a_report_about_an_unknown_message_is_acknowledged(client, sent_whatsapp):
    data = params(sent_whatsapp, "delivered", MessageSid="SMffffffffffffffffffffffffffffffff")
    assert post(client, data).status_code == 204
    sent_whatsapp.refresh_from_db()
    assert sent_whatsapp.delivery_status == "queued"


def test_the_callback_needs_no_csrf_token_but_only_accepts_post(sent_whatsapp):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post(strict, params(sent_whatsapp, "delivered")).status_code == 204
    assert strict.get(reverse("twilio_status_callback")).status_code == 405


def test_the_url_sent_to_twilio_is_the_one_whose_signature_we_accept(client, settings, fake_twilio):
    """GIVEN a WhatsApp really sent through the twilio client, WHEN Twilio calls back the URL it was given,
    signed as Twilio signs, THEN the row gets the delivery status."""
    from urllib.parse import urlsplit

    from django.utils import timezone

    from notifications.sending import send_notification

    from .conftest import make_log

    fake_twilio.accept()
    log = make_log("CREATION", "WHATSAPP", email="")
    send_notification(log.pk, now=timezone.now())
    log.refresh_from_db()
    [form] = fake_twilio.forms()
    callback_url = form["StatusCallback"]
    data = {
        "MessageSid": log.provider_message_id,
        "MessageStatus": "delivered",
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
    }
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(callback_url, data)

    response = client.post(urlsplit(callback_url).path, data, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 204
    log.refresh_from_db()
    assert (log.statut, log.delivery_status) == (Statut.ENVOYEE, "delivered")


@pytest.mark.parametrize(
    ("error_code", "cause"),
    [
        ("63016", CodeErreur.MISCONFIGURED),
        ("21610", CodeErreur.OPTED_OUT),
        ("30008", CodeErreur.OTHER),
        ("", CodeErreur.OTHER),
    ],
)
def test_a_delivery_failure_records_the_cause_of_twilios_error_code(client, sent_whatsapp, error_code, cause):
    post(client, params(sent_whatsapp, "undelivered", ErrorCode=error_code))

    sent_whatsapp.refresh_from_db()
    assert (sent_whatsapp.statut, sent_whatsapp.erreur_code) == (Statut.ECHEC_PERMANENT, cause)


@pytest.mark.parametrize("final", ["delivered", "read"])
@pytest.mark.parametrize("late_failure", ["undelivered", "failed"])
def test_delivered_and_read_are_final_a_later_failure_changes_nothing(
    client, sent_whatsapp, final, late_failure, django_capture_on_commit_callbacks
):
    """GIVEN Twilio reported the message delivered (or read), WHEN a signed failure report arrives later,
    THEN the row stays sent and delivered, and no fallback is planned or enqueued."""
    post(client, params(sent_whatsapp, final))

    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, params(sent_whatsapp, late_failure, ErrorCode="63016"))

    assert response.status_code == 204
    sent_whatsapp.refresh_from_db()
    assert (
        sent_whatsapp.statut,
        sent_whatsapp.delivery_status,
        sent_whatsapp.erreur_code,
        sent_whatsapp.erreur_message,
    ) == (Statut.ENVOYEE, final, "", "")
    assert not NotificationLog.objects.filter(fallback_of=sent_whatsapp).exists()
    assert callbacks == []
