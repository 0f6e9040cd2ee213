"""Every failure records its cause in `erreur_code`, decided where the channel classified it.

Failures are produced for real: SMTP answers from the aiosmtpd sink, Twilio answers
from the fake Messages API through the real `twilio` client.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications import lifecycle, relay
from notifications.exceptions import RetryLater
from notifications.models import Canal, CodeErreur, MessageOverride, NotificationLog, Statut
from notifications.sending import send_notification
from radgestmat.testing.net import free_port

from .conftest import make_log

pytestmark = pytest.mark.django_db


def send(log, now=None):
    return send_notification(log.pk, now=now or timezone.now())


def reload(log):
    log.refresh_from_db()
    return log


def test_it_marks_credentials_when_the_smtp_server_refuses_our_login_with_535(smtp_sink, settings):
    smtp_sink.accept_login = False
    smtp_sink.restart()
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "radgestmat", "wrong-password"
    log = make_log("CREATION", "EMAIL", email="camille@example.org")

    assert send(log) == Statut.ECHEC_PERMANENT

    log = reload(log)
    assert log.erreur_code == CodeErreur.CREDENTIALS
    assert log.erreur_message.startswith("Mail server answered 535")
    assert smtp_sink.messages == []


def test_it_sends_when_the_smtp_server_accepts_our_login(smtp_sink, settings):
    """The same sink with a good login: the 535 above comes from the credentials, not from offering AUTH."""
    smtp_sink.accept_login = True
    smtp_sink.restart()
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "radgestmat", "right-password"

    assert send(make_log("CREATION", "EMAIL")) == Statut.ENVOYEE
    assert len(smtp_sink.messages) == 1


def test_it_marks_invalid_recipient_on_smtp_550(smtp_sink):
    smtp_sink.rcpt_reply = "550 5.1.1 No such user here"
    log = make_log("CREATION", "EMAIL")

    assert send(log) == Statut.ECHEC_PERMANENT

    assert reload(log).erreur_code == CodeErreur.INVALID_RECIPIENT


def test_it_marks_invalid_recipient_for_a_stored_address_that_is_not_one(smtp_sink):
    log = make_log("CREATION", "EMAIL")
    with connection.cursor() as cursor:  # stored before validation existed
        cursor.execute("UPDATE assets_client SET email = %s WHERE id = %s", ["camille@", log.attribution.client_id])

    assert send(log) == Statut.ECHEC_PERMANENT

    assert reload(log).erreur_code == CodeErreur.INVALID_RECIPIENT
    assert smtp_sink.messages == []


def test_a_busy_mail_server_is_provider_unavailable_until_the_give_up_and_cleared_once_sent(smtp_sink):
    smtp_sink.rcpt_reply = "451 4.3.0 Mailbox busy, try later"
    log = make_log("CREATION", "EMAIL")
    with pytest.raises(RetryLater):
        send(log)
    assert (reload(log).statut, log.erreur_code) == (Statut.ECHEC, CodeErreur.PROVIDER_UNAVAILABLE)

    smtp_sink.rcpt_reply = None
    assert send(log) == Statut.ENVOYEE
    assert (reload(log).erreur_code, log.erreur_message) == ("", "")


def test_an_unreachable_mail_server_is_provider_unavailable(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    log = make_log("CREATION", "EMAIL")

    with pytest.raises(RetryLater):
        send(log)

    assert reload(log).erreur_code == CodeErreur.PROVIDER_UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "code", "statut", "cause"),
    [
        (401, 20003, Statut.ECHEC_PERMANENT, CodeErreur.CREDENTIALS),
        (401, None, Statut.ECHEC_PERMANENT, CodeErreur.CREDENTIALS),
        (400, 21211, Statut.ECHEC_PERMANENT, CodeErreur.INVALID_RECIPIENT),
        (400, 21614, Statut.ECHEC_PERMANENT, CodeErreur.INVALID_RECIPIENT),
        (400, 21610, Statut.ECHEC_PERMANENT, CodeErreur.OPTED_OUT),
        (400, 63003, Statut.ECHEC_PERMANENT, CodeErreur.OPTED_OUT),
        (429, 20429, Statut.ECHEC, CodeErreur.RATE_LIMITED),
        (500, None, Statut.ECHEC_PERMANENT, CodeErreur.AMBIGUOUS),
        (503, None, Statut.ECHEC_PERMANENT, CodeErreur.AMBIGUOUS),
        (404, 20404, Statut.ECHEC_PERMANENT, CodeErreur.OTHER),
    ],
)
def test_it_marks_the_cause_of_a_twilio_answer(fake_twilio, status, code, statut, cause):
    fake_twilio.fail(status, code, "Error")
    log = make_log("CREATION", "WHATSAPP", email="")

    if statut == Statut.ECHEC:
        with pytest.raises(RetryLater):
            send(log)
    else:
        assert send(log) == statut

    log = reload(log)
    assert (log.statut, log.erreur_code) == (statut, cause)
    assert f"Twilio HTTP {status}" in log.erreur_message


def test_the_cause_stays_on_the_failed_row_and_the_fallback_starts_without_one(fake_twilio):
    fake_twilio.fail(400, 21211, "Invalid 'To' Phone Number")
    log = make_log("CREATION", "WHATSAPP", email="camille@example.org")

    send(log)

    assert reload(log).erreur_code == CodeErreur.INVALID_RECIPIENT
    fallback = NotificationLog.objects.get(fallback_of=log)
    assert (fallback.canal, fallback.erreur_code) == (Canal.EMAIL, "")


def test_an_unreachable_twilio_is_provider_unavailable(fake_twilio, settings):
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    log = make_log("CREATION", "WHATSAPP")

    with pytest.raises(RetryLater):
        send(log)

    assert reload(log).erreur_code == CodeErreur.PROVIDER_UNAVAILABLE


def test_whatsapp_without_credentials_is_misconfigured_not_a_rejection(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    log = make_log("CREATION", "WHATSAPP", email="")

    assert send(log) == Statut.ECHEC_PERMANENT

    assert reload(log).erreur_code == CodeErreur.MISCONFIGURED


def test_a_message_that_does_not_render_is_a_content_failure(mailoutbox):
    log = make_log("CREATION", "EMAIL", language="fr")
    # bulk_create skips the validation a save in the admin would do: a broken override from before it existed.
    MessageOverride.objects.bulk_create(
        [MessageOverride(type_notification="CREATION", canal="EMAIL", language="fr", subject="Prêt", body="{{ nope }}")]
    )

    assert send(log) == Statut.ECHEC_PERMANENT

    log = reload(log)
    assert log.erreur_code == CodeErreur.CONTENT and "nope" in log.erreur_message
    assert mailoutbox == []


def test_a_row_over_the_daily_cap_waits_with_cap_reached(mailoutbox, settings, redis_db):
    settings.NOTIFICATION_DAILY_CAP_EMAIL = 1
    now = timezone.now()
    send(make_log("CREATION", "EMAIL"), now=now)
    capped = make_log("CREATION", "EMAIL")

    assert send(capped, now=now) == Statut.EN_ATTENTE

    assert reload(capped).erreur_code == CodeErreur.CAP_REACHED


def stranded(log, settings):
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS,
        nb_tentatives=1,
        date_claimed=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60),
    )


def test_the_relay_marks_a_stranded_email_worker_stopped_and_a_stranded_whatsapp_ambiguous(settings):
    email, whatsapp = make_log("CREATION", "EMAIL"), make_log("CREATION", "WHATSAPP")
    stranded(email, settings)
    stranded(whatsapp, settings)

    relay.recover_stranded(timezone.now(), relay.RelayReport())

    assert (reload(email).statut, email.erreur_code) == (Statut.ECHEC, CodeErreur.WORKER_STOPPED)
    assert (reload(whatsapp).statut, whatsapp.erreur_code) == (Statut.ECHEC_PERMANENT, CodeErreur.AMBIGUOUS)


def test_a_stranded_row_out_of_attempts_is_given_up_as_worker_stopped(settings):
    log = make_log("CREATION", "EMAIL")
    stranded(log, settings)
    NotificationLog.objects.filter(pk=log.pk).update(nb_tentatives=settings.NOTIFICATION_MAX_ATTEMPTS)

    relay.recover_stranded(timezone.now(), relay.RelayReport())

    assert (reload(log).statut, log.erreur_code) == (Statut.ECHEC_PERMANENT, CodeErreur.WORKER_STOPPED)


def test_a_staff_retry_clears_the_cause(django_capture_on_commit_callbacks):
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.INVALID_RECIPIENT, erreur_message="550 no such user"
    )

    assert lifecycle.requeue([log.pk], now=timezone.now()) == 1

    assert (reload(log).statut, log.erreur_code, log.erreur_message) == (Statut.EN_ATTENTE, "", "")


def test_a_cancellation_replaces_the_cause_with_its_reason():
    log = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.ECHEC, erreur_code=CodeErreur.PROVIDER_UNAVAILABLE, erreur_message="451 try later"
    )

    lifecycle.cancel(NotificationLog.objects.filter(pk=log.pk), reason="Cancelled by desk.")

    assert (reload(log).statut, log.erreur_code, log.erreur_message) == (Statut.ANNULEE, "", "Cancelled by desk.")


def test_a_row_inserted_without_the_column_gets_no_cause():
    """GIVEN a process still running the previous release (it knows nothing of erreur_code)
    WHEN it plans a row during a rolling restart
    THEN the insert works and the row has no cause."""
    from assets.tests.factories import AttributionFactory

    loan = AttributionFactory()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {NotificationLog._meta.db_table} (attribution_id, type_notification, canal, audience, "
            "niveau_escalade, statut, date_scheduled, nb_tentatives, duree_emprunt, destinataire, erreur_message, "
            "provider_message_id, delivery_status, created_at, updated_at) "
            "VALUES (%s, 'CREATION', 'EMAIL', 'CLIENT', 0, 'EN_ATTENTE', %s, 0, '', '', '', '', '', %s, %s)",
            [loan.pk, now, now, now],
        )

    assert NotificationLog.objects.get(attribution=loan).erreur_code == ""
