"""Failure alerts reach the admins once per incident, and once more when it is over.

Rejected credentials are produced for real: the engine sends through the real
`twilio` client to a fake Twilio answering 401/20003, and through SMTP to an
aiosmtpd server refusing our login with 535.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from notifications import alerts
from notifications.models import CodeErreur, NotificationLog, Statut
from notifications.schedule import register_schedule
from notifications.sending import send_notification
from radgestmat.testing.smtp import SmtpSink
from radgestmat.watchdog import offer_alert_check

from .conftest import make_log

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admins_and_clean_incidents(settings):
    settings.ADMINS = [("Ops", "ops@example.org")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_FAILURES_PER_HOUR = 3
    keys = [alerts.incident_cache_key(key) for key in alerts.INCIDENT_KEYS] + ["alert-watchdog"]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


@pytest.fixture
def beat_alive():
    """The schedule is registered and beat started the relay a minute ago."""
    from django_celery_beat.models import PeriodicTask

    register_schedule()
    PeriodicTask.objects.filter(name="dispatch_due_notifications").update(
        last_run_at=timezone.now() - timedelta(minutes=1)
    )


def fail_permanently(n: int, reason: str = "Mail server answered 550 5.1.1 <camille@example.org>: no such user"):
    for _ in range(n):
        log = make_log("CREATION", "EMAIL")
        NotificationLog.objects.filter(pk=log.pk).update(statut=Statut.ECHEC_PERMANENT, erreur_message=reason)


def subjects() -> list[str]:
    return [str(message.subject) for message in mail.outbox]


def test_failures_over_the_threshold_alert_once_then_once_more_when_over(beat_alive):
    fail_permanently(4)

    assert alerts.check_notification_alerts(now=timezone.now()) == {"opened": ["failures"], "closed": []}
    assert alerts.check_notification_alerts(now=timezone.now()) == {"opened": [], "closed": []}

    [alert] = mail.outbox
    assert alert.to == ["ops@example.org"]
    assert "4 notifications failed in the last hour" in alert.subject
    assert "550 5.1.1" in alert.body
    assert "camille@example.org" not in alert.body  # addresses are masked even for admins

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(name="dispatch_due_notifications").update(last_run_at=timezone.now())
        assert alerts.check_notification_alerts(now=timezone.now()) == {"opened": [], "closed": ["failures"]}
        assert alerts.check_notification_alerts(now=timezone.now()) == {"opened": [], "closed": []}
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.endswith("Resolved: failures")


def test_failures_at_the_threshold_do_not_alert(beat_alive):
    fail_permanently(3)

    assert alerts.check_notification_alerts(now=timezone.now()) == {"opened": [], "closed": []}
    assert mail.outbox == []


def test_twilio_rejecting_our_credentials_alerts_about_that_channel(beat_alive, fake_twilio):
    fake_twilio.fail(401, 20003, "Authenticate")
    log = make_log("CREATION", "WHATSAPP", email="")
    send_notification(log.pk, now=timezone.now())
    log.refresh_from_db()
    assert log.statut == Statut.ECHEC_PERMANENT

    result = alerts.check_notification_alerts(now=timezone.now())

    assert result["opened"] == ["credentials:WHATSAPP"]
    assert subjects() == ["[Django] Alert: WhatsApp: the provider rejects our credentials"]
    assert "test-auth-token" not in mail.outbox[0].body


def test_smtp_rejecting_our_login_alerts_about_email(beat_alive, settings):
    sink = SmtpSink(accept_login=False).up()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "radgestmat", "wrong-password"
        settings.EMAIL_USE_TLS = False
        log = make_log("CREATION", "EMAIL", email="camille@example.org")
        send_notification(log.pk, now=timezone.now())
    finally:
        sink.down()
        from notifications.channels.email import drop_connection

        drop_connection()
    log.refresh_from_db()
    assert log.erreur_message.startswith("Mail server answered 535"), log.erreur_message
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert alerts.check_notification_alerts(now=timezone.now())["opened"] == ["credentials:EMAIL"]
    assert "wrong-password" not in mail.outbox[0].body


def test_the_credentials_alert_reads_the_cause_not_the_wording(beat_alive):
    """GIVEN an SMS row rejected for its credentials whose message is worded otherwise (reworded, translated)
    and an email row whose message looks like the old 535 wording but whose cause is not credentials
    WHEN the alerts are checked
    THEN only the SMS channel is reported."""
    sms = make_log("CREATION", "SMS")
    NotificationLog.objects.filter(pk=sms.pk).update(
        statut=Statut.ECHEC_PERMANENT,
        erreur_code=CodeErreur.CREDENTIALS,
        erreur_message="Le fournisseur a refusé nos identifiants.",
    )
    email = make_log("CREATION", "EMAIL")
    NotificationLog.objects.filter(pk=email.pk).update(
        statut=Statut.ECHEC_PERMANENT,
        erreur_code=CodeErreur.INVALID_RECIPIENT,
        erreur_message="Mail server answered 535 was quoted by the recipient's server",
    )

    assert alerts.check_notification_alerts(now=timezone.now())["opened"] == ["credentials:SMS"]
    assert subjects() == ["[Django] Alert: SMS: the provider rejects our credentials"]


def test_an_old_credentials_rejection_is_not_an_incident(beat_alive):
    log = make_log("CREATION", "WHATSAPP")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.CREDENTIALS, erreur_message="Twilio HTTP 401"
    )

    later = timezone.now() + alerts.CREDENTIALS_WINDOW + timedelta(minutes=1)
    assert "credentials:WHATSAPP" not in [incident.key for incident in alerts.current_incidents(later)]
    assert "credentials:WHATSAPP" in [incident.key for incident in alerts.current_incidents(timezone.now())]


def test_beat_silent_for_too_long_alerts_and_recovers(settings, beat_alive):
    later = timezone.now() + timedelta(minutes=settings.BEAT_STALE_AFTER_MINUTES + 2)
    with time_machine.travel(later):
        assert alerts.check_notification_alerts(now=timezone.now())["opened"] == ["beat"]
        assert "beat has stopped" in mail.outbox[0].subject

        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(name="dispatch_due_notifications").update(last_run_at=timezone.now())
        assert alerts.check_notification_alerts(now=timezone.now())["closed"] == ["beat"]


def test_a_schedule_never_registered_is_a_beat_incident():
    assert alerts.check_notification_alerts(now=timezone.now())["opened"] == ["beat"]
    assert "setup_schedule" in mail.outbox[0].body


def test_when_the_alert_email_cannot_be_sent_the_next_run_tries_again(settings, beat_alive):
    fail_permanently(4)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2

    with pytest.raises(OSError):
        alerts.check_notification_alerts(now=timezone.now())

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alerts.check_notification_alerts(now=timezone.now())["opened"] == ["failures"]


def test_the_task_and_the_worker_watchdog_run_the_check_once_per_period(settings):
    """GIVEN beat is dead (nothing registered), WHEN every worker's watchdog fires, THEN one check runs and one email goes out."""
    offer_alert_check()
    offer_alert_check()
    offer_alert_check()

    assert subjects() == ["[Django] Alert: beat has stopped: no notification is being planned or relayed"]
