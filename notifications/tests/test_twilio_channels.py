"""WhatsApp and SMS through the real `twilio` client, against a local server speaking Twilio's Messages API."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from notifications.exceptions import RetryLater
from notifications.models import NotificationLog, Statut, WhatsAppConfig
from notifications.sending import send_notification

from .conftest import consent_to_whatsapp, make_log

pytestmark = pytest.mark.django_db


def send(log):
    return send_notification(log.pk, now=timezone.now())


def test_it_sends_a_whatsapp_body_and_records_the_sid(fake_twilio):
    fake_twilio.accept()
    log = make_log("CREATION", "WHATSAPP", name="Camille", phone="+33 6 12 34 56 78", language="fr")

    assert send(log) == Statut.ENVOYEE

    [form] = fake_twilio.forms()
    assert form["To"] == "whatsapp:+33612345678"
    assert form["From"] == "whatsapp:+14155238886"
    assert form["Body"].startswith("✅ *Prêt confirmé*\nBonjour Camille, vous avez emprunté le matériel *")
    assert form["StatusCallback"] == "https://radgestmat.example.org/webhooks/twilio/status/"
    assert "ContentSid" not in form
    log.refresh_from_db()
    assert log.statut == Statut.ENVOYEE
    assert log.provider_message_id == "SM" + "1".zfill(32)
    assert log.destinataire == "+33612345678"


def test_it_uses_the_approved_content_template_mapped_to_the_type(fake_twilio):
    fake_twilio.accept()
    WhatsAppConfig.objects.create(
        phone_number_sender="+14155550100", content_templates={"RAPPEL_2H": "HX0123456789abcdef0123456789abcdef"}
    )
    log = make_log("RAPPEL_2H", "WHATSAPP", name="Jo", language="en")

    assert send(log) == Statut.ENVOYEE

    [form] = fake_twilio.forms()
    assert form["From"] == "whatsapp:+14155550100"
    assert form["ContentSid"] == "HX0123456789abcdef0123456789abcdef"
    variables = json.loads(form["ContentVariables"])
    assert variables["1"] == "Jo"
    assert log.attribution.materiel.code in variables["2"]
    assert variables["5"] == "RadGestMat"
    assert "Body" not in form


def test_the_sid_map_can_come_from_settings(fake_twilio, settings):
    fake_twilio.accept()
    settings.WHATSAPP_CONTENT_SIDS = {"CREATION": "HXfromsettings"}
    log = make_log("CREATION", "WHATSAPP")

    send(log)

    assert fake_twilio.forms()[0]["ContentSid"] == "HXfromsettings"


def test_21211_is_permanent_and_falls_back_to_email(fake_twilio, django_capture_on_commit_callbacks):
    fake_twilio.fail(400, 21211, "The 'To' number is not a valid phone number.")
    log = make_log("CREATION", "WHATSAPP", email="camille@example.org")
    consent_to_whatsapp(log.attribution.client, notifications_email=False)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.nb_tentatives == 1
    assert "21211" in log.erreur_message and "invalid “To” phone number" in log.erreur_message
    fallback = NotificationLog.objects.get(fallback_of=log)
    assert fallback.canal == "EMAIL" and fallback.statut == Statut.EN_ATTENTE
    assert f"Fell back to Email (notification {fallback.pk})" in log.reason_text
    assert len(callbacks) == 1  # the fallback row is enqueued once the transaction commits


def test_a_permanent_whatsapp_failure_falls_back_to_sms_when_allowed(fake_twilio, mailoutbox):
    fake_twilio.fail(400, 63003, "Channel could not find To address")
    fake_twilio.accept()
    log = make_log("RAPPEL_2H", "WHATSAPP")
    consent_to_whatsapp(log.attribution.client, sms_enabled=True)

    send(log)  # the SMS row is enqueued on commit; run it as the worker would
    sms = NotificationLog.objects.get(fallback_of=log)
    assert sms.canal == "SMS"
    assert send(sms) == Statut.ENVOYEE

    whatsapp_form, sms_form = fake_twilio.forms()
    assert sms_form["To"] == "+33612345678"
    assert sms_form["From"] == "+15005550006"
    assert "rendre dans" in sms_form["Body"]


def test_a_permanent_sms_failure_falls_back_to_email(fake_twilio):
    fake_twilio.fail(400, 21614, "'To' number is not a valid mobile number")
    log = make_log("RETARD", "SMS", email="camille@example.org")
    log.attribution.date_retour_prevue = timezone.now() - timezone.timedelta(minutes=5)
    log.attribution.date_debut = timezone.now() - timezone.timedelta(hours=1)
    log.attribution.save()

    assert send(log) == Statut.ECHEC_PERMANENT

    assert NotificationLog.objects.get(fallback_of=log).canal == "EMAIL"


def test_no_email_fallback_when_an_email_row_of_the_notification_exists(fake_twilio):
    fake_twilio.fail(400, 63016, "Outside the allowed window")
    log = make_log("CREATION", "WHATSAPP")
    make_log("CREATION", "EMAIL", attribution=log.attribution)

    send(log)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC_PERMANENT
    assert "24-hour" in log.erreur_message
    assert not NotificationLog.objects.filter(fallback_of=log).exists()


def test_429_is_transient_and_retried(fake_twilio):
    fake_twilio.fail(429, 20429, "Too Many Requests")
    log = make_log("CREATION", "WHATSAPP")

    with pytest.raises(RetryLater):
        send(log)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC
    assert "429" in log.erreur_message
    assert log.date_tentative_prochaine is not None


def test_a_5xx_on_creation_is_ambiguous_never_resent_nor_duplicated_elsewhere(fake_twilio):
    fake_twilio.fail(500, None, "Internal Server Error")
    log = make_log("CREATION", "WHATSAPP")

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert "Ambiguous" in log.erreur_message and "check the Twilio message logs" in log.erreur_message
    assert not NotificationLog.objects.filter(fallback_of=log).exists()
    assert len(fake_twilio.requests) == 1


def test_an_unreachable_twilio_is_transient(fake_twilio, settings):
    from radgestmat.testing.net import free_port

    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    log = make_log("CREATION", "WHATSAPP")

    with pytest.raises(RetryLater):
        send(log)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC and "unreachable" in log.erreur_message


def test_an_invalid_phone_is_recorded_without_calling_twilio(fake_twilio):
    log = make_log("CREATION", "WHATSAPP", email="")
    with connection.cursor() as cursor:  # a bad number stored before validation existed
        cursor.execute("UPDATE assets_client SET phone = %s WHERE id = %s", ["+33 1 23", log.attribution.client_id])

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert "not a valid phone number" in log.erreur_message
    assert fake_twilio.requests == []


def test_whatsapp_without_credentials_fails_permanently_with_the_reason(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    log = make_log("CREATION", "WHATSAPP", email="")

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.erreur_message == "WHATSAPP is not configured (Twilio credentials or sender missing)."


def test_a_bad_content_template_map_is_refused_by_the_field(admin_client):
    response = admin_client.post(
        "/admin/notifications/whatsappconfig/add/",
        {
            "phone_number_sender": "+14155238886",
            "api_provider": "TWILIO",
            "is_active": "on",
            "content_templates": json.dumps({"RAPEL_2H": "HX" + "0" * 32, "RETARD": "12"}),
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["content_templates"]
    assert "“RAPEL_2H” is not a notification type" in errors[0]
    assert "RETARD must look like HX" in errors[1]
    assert not WhatsAppConfig.objects.exists()


def test_the_whatsapp_admin_says_credentials_come_from_the_environment(admin_client):
    page = admin_client.get("/admin/notifications/whatsappconfig/add/").content.decode()
    assert "Twilio credentials are never stored here: they come from the environment only" in page
    assert 'name="api_key"' not in page and 'name="phone_number_sender"' in page
