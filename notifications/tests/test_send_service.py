"""The send service around the channels: claim once, re-check relevance, safety rails, daily caps, the task."""

from __future__ import annotations

import logging

import pytest
import time_machine
from django.utils import timezone

from assets.services import lend, record_return
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import (
    MessageOverride,
    NotificationLog,
    NotificationPreferences,
    Statut,
)
from notifications.sending import claim, retry_delay, send_notification
from tasks import send_notification as send_task

from .conftest import make_log

pytestmark = pytest.mark.django_db


def send(log, now=None):
    return send_notification(log.pk, now=now or timezone.now())


def test_a_row_already_claimed_is_not_sent_again(mailoutbox):
    log = make_log("CREATION", "EMAIL")
    assert send(log) == Statut.ENVOYEE

    assert send(log) is None  # a second copy of the task message

    assert len(mailoutbox) == 1
    log.refresh_from_db()
    assert log.nb_tentatives == 1


def test_a_row_being_sent_elsewhere_is_not_claimed(mailoutbox):
    log = make_log("CREATION", "EMAIL")
    assert claim(log.pk, now=timezone.now())

    assert send(log) is None
    assert mailoutbox == []


def test_a_deleted_row_is_skipped():
    assert send_notification(987654, now=timezone.now()) is None


def test_lending_sends_the_confirmation_and_returning_cancels_reminders(
    mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="camille@example.org")
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        attribution = lend(materiel=MaterielFactory(), client=client, due=now + timezone.timedelta(hours=3), now=now)
    # Lending planned the reminder 2 h before the due time.
    reminder = NotificationLog.objects.get(attribution=attribution, type_notification="RAPPEL_2H", canal="EMAIL")
    assert reminder.date_scheduled == now + timezone.timedelta(hours=1)

    later = now + timezone.timedelta(minutes=30)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        record_return(attribution, now=later)

    assert [m.subject.split(" :")[0] for m in mailoutbox] == ["Prêt confirmé", "Retour enregistré"]
    reminder.refresh_from_db()
    assert reminder.statut == Statut.ANNULEE and "returned" in reminder.reason_text


def test_a_reminder_of_a_returned_loan_is_cancelled_at_claim_time(mailoutbox):
    log = make_log("RAPPEL_2H", "EMAIL")
    attribution = log.attribution
    attribution.date_retour_effective = timezone.now()
    attribution.save()

    assert send(log) == Statut.ANNULEE

    log.refresh_from_db()
    assert log.reason_text == "Loan returned before this notification was sent."
    assert log.nb_tentatives == 0
    assert mailoutbox == []


def test_creation_and_restitution_of_a_returned_loan_are_still_sent(mailoutbox):
    log = make_log("CREATION", "EMAIL")
    log.attribution.date_retour_effective = timezone.now()
    log.attribution.save()

    assert send(log) == Statut.ENVOYEE
    assert send(make_log("RESTITUTION", "EMAIL", attribution=log.attribution)) == Statut.ENVOYEE
    assert send(make_log("RETARD", "EMAIL", attribution=log.attribution)) == Statut.ANNULEE


def test_a_reminder_switched_off_after_planning_is_cancelled(mailoutbox):
    log = make_log("RAPPEL_2H", "EMAIL")
    NotificationPreferences.objects.create(client=log.attribution.client, rappel_2h_avant=False)

    assert send(log) == Statut.ANNULEE
    log.refresh_from_db()
    assert log.reason_text == "The borrower switched this reminder off."


def test_a_reminder_past_the_due_time_is_cancelled(mailoutbox):
    log = make_log("RAPPEL_2H", "EMAIL")

    assert send(log, now=log.attribution.date_retour_prevue + timezone.timedelta(minutes=1)) == Statut.ANNULEE
    assert mailoutbox == []


def test_an_overdue_alert_goes_out_even_with_email_switched_off(mailoutbox):
    log = make_log("RETARD", "EMAIL")
    NotificationPreferences.objects.create(client=log.attribution.client, notifications_email=False)

    assert send(log, now=log.attribution.date_retour_prevue + timezone.timedelta(hours=1)) == Statut.ENVOYEE


def test_redirect_sends_everything_to_the_test_address(mailoutbox, settings):
    settings.NOTIFICATION_REDIRECT_EMAIL = "qa@example.org"
    log = make_log("CREATION", "EMAIL", email="camille@example.org")

    assert send(log) == Statut.ENVOYEE

    [message] = mailoutbox
    assert message.to[0].endswith("<qa@example.org>")
    assert message.subject.startswith("[→ c***@example.org] ")
    log.refresh_from_db()
    assert log.destinataire == "qa@example.org"


def test_redirect_without_a_test_number_never_reaches_a_real_phone(settings, fake_twilio):
    settings.NOTIFICATION_REDIRECT_EMAIL = "qa@example.org"
    log = make_log("CREATION", "WHATSAPP")

    assert send(log) == Statut.ENVOYEE

    assert fake_twilio.requests == []
    log.refresh_from_db()
    assert log.delivery_status == "dry-run"


def test_redirect_phone_goes_to_the_test_number(settings, fake_twilio):
    fake_twilio.accept()
    settings.NOTIFICATION_REDIRECT_PHONE = "+33700000001"
    log = make_log("CREATION", "WHATSAPP", phone="+33612345678")

    send(log)

    assert fake_twilio.forms()[0]["To"] == "whatsapp:+33700000001"


def test_dry_run_logs_instead_of_sending(mailoutbox, settings, caplog):
    settings.NOTIFICATION_DRY_RUN = True
    log = make_log("CREATION", "EMAIL")

    with caplog.at_level(logging.INFO, logger="radgestmat.notifications"):
        assert send(log) == Statut.ENVOYEE

    assert mailoutbox == []
    log.refresh_from_db()
    assert log.delivery_status == "dry-run" and log.provider_message_id == ""
    assert any(record.message.startswith("dry run: EMAIL to ") for record in caplog.records)


def test_one_structured_log_line_per_attempt_without_full_addresses(mailoutbox, caplog):
    log = make_log("CREATION", "EMAIL", email="camille@example.org", phone="+33612345678")

    with caplog.at_level(logging.INFO, logger="radgestmat.notifications"):
        send(log)

    [record] = [r for r in caplog.records if r.name == "radgestmat.notifications"]
    assert (record.log_id, record.attribution_id, record.type, record.channel) == (
        log.pk,
        log.attribution_id,
        "CREATION",
        "EMAIL",
    )
    assert record.status == "ENVOYEE" and record.attempt == 1 and record.duration_ms >= 0
    assert record.provider_id
    assert "camille@example.org" not in record.getMessage() and "c***@example.org" in record.getMessage()


def test_the_first_retry_waits_tens_of_seconds_and_grows(settings):
    firsts = [retry_delay(1) for _ in range(50)]
    seconds = [retry_delay(2) for _ in range(50)]

    assert min(firsts) >= settings.NOTIFICATION_RETRY_BASE_DELAY >= 30
    assert max(firsts) <= settings.NOTIFICATION_RETRY_BASE_DELAY * (1 + settings.NOTIFICATION_RETRY_JITTER)
    assert len({round(d, 3) for d in firsts}) > 1  # jitter
    assert min(seconds) >= 2 * settings.NOTIFICATION_RETRY_BASE_DELAY


def test_the_task_gives_up_after_three_attempts(smtp_sink):
    """Eagerly, Celery runs the retries at once: the row shows the three attempts and the final verdict."""
    smtp_sink.rcpt_reply = "450 4.2.1 Mailbox busy"
    log = make_log("CREATION", "EMAIL")

    send_task.delay(log.pk)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC_PERMANENT
    assert log.nb_tentatives == 3
    assert "450" in log.erreur_message


def test_over_the_daily_cap_rows_wait_for_the_next_day(mailoutbox, settings, redis_db):
    settings.NOTIFICATION_DAILY_CAP_EMAIL = 2
    evening = timezone.make_aware(timezone.datetime(2026, 3, 28, 21, 0))  # the eve of the DST change

    with time_machine.travel(evening, tick=False):
        logs = [make_log("CREATION", "EMAIL") for _ in range(3)]
        outcomes = [send(log, now=evening) for log in logs]

    assert outcomes == [Statut.ENVOYEE, Statut.ENVOYEE, Statut.EN_ATTENTE]
    assert len(mailoutbox) == 2
    waiting = NotificationLog.objects.get(pk=logs[2].pk)
    assert waiting.nb_tentatives == 0 and waiting.date_claimed is None
    assert timezone.localtime(waiting.date_scheduled).isoformat() == "2026-03-29T08:00:00+02:00"
    assert "Daily cap of 2 Email messages reached" in waiting.reason_text

    next_morning = timezone.make_aware(timezone.datetime(2026, 3, 29, 8, 0))
    assert send(waiting, now=next_morning) == Statut.ENVOYEE


def test_the_cap_counter_is_rebuilt_from_the_database_when_redis_lost_it(mailoutbox, settings, redis_db):
    settings.NOTIFICATION_DAILY_CAP_EMAIL = 1
    now = timezone.now()
    send(make_log("CREATION", "EMAIL"), now=now)
    for key in redis_db.scan_iter("radgestmat:cap:*"):
        redis_db.delete(key)

    assert send(make_log("CREATION", "EMAIL"), now=now) == Statut.EN_ATTENTE


def test_a_send_costs_a_constant_number_of_queries(mailoutbox, django_assert_max_num_queries):
    logs = [make_log("CREATION", "EMAIL") for _ in range(2)]
    NotificationPreferences.objects.create(client=logs[1].attribution.client)

    for log in logs:
        # claim (read the row's group, take it), load the row with its loan, client, preferences, material,
        # extensions and whether an override exists, record
        with django_assert_max_num_queries(4):
            send(log)


def test_a_whatsapp_send_reads_the_whatsapp_config_once(settings, fake_twilio, django_assert_max_num_queries):
    settings.WHATSAPP_ENABLED = True
    fake_twilio.accept()
    log = make_log("CREATION", "WHATSAPP", phone="+33612345678")

    # claim (read the group, take it), load, the active WhatsAppConfig (sender and template), record
    with django_assert_max_num_queries(5):
        assert send(log) == Statut.ENVOYEE


def test_an_override_saved_in_the_admin_is_what_the_send_delivers(mailoutbox):
    MessageOverride.objects.create(
        type_notification="CREATION",
        canal="EMAIL",
        language="fr",
        subject="Prêt de {{ materiel_code }}",
        body="Bonjour {{ client_name }}, voici {{ materiel_code }}.",
    )
    log = make_log("CREATION", "EMAIL", name="Camille", language="fr")

    assert send(log) == Statut.ENVOYEE

    code = log.attribution.materiel.code
    assert mailoutbox[0].subject == f"Prêt de {code}"
    assert mailoutbox[0].body == f"Bonjour Camille, voici {code}."


def test_risky_settings_are_system_check_warnings(settings):
    from notifications.system_checks import check_notification_settings

    assert check_notification_settings() == []
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", ""
    settings.NOTIFICATION_DRY_RUN = True
    settings.NOTIFICATION_REDIRECT_EMAIL = "qa@example.org"
    settings.EMAIL_TIMEOUT = 120
    settings.WHATSAPP_CONTENT_SIDS = {"CREATON": "HX" + "0" * 32}

    ids = [warning.id for warning in check_notification_settings()]

    assert ids == [
        "notifications.W001",
        "notifications.W002",
        "notifications.W003",
        "notifications.W004",
        "notifications.W005",
    ]


def test_a_channel_switched_off_after_planning_is_cancelled(fake_twilio):
    log = make_log("CREATION", "WHATSAPP")
    NotificationPreferences.objects.filter(client=log.attribution.client).update(notifications_whatsapp=False)

    assert send(log) == Statut.ANNULEE
    log.refresh_from_db()
    assert log.reason_text == "The borrower switched WhatsApp off."
    assert fake_twilio.requests == []


def test_falling_back_twice_for_the_same_failure_plans_one_row(settings):
    from notifications.lifecycle import fall_back

    log = make_log("CREATION", "WHATSAPP", email="camille@example.org")
    now = timezone.now()

    first = fall_back(log, now=now)
    again = fall_back(log, now=now)

    assert first.canal == "EMAIL" and first.fallback_of == log
    assert again is None
    assert NotificationLog.objects.filter(attribution=log.attribution).count() == 2


def test_the_send_task_is_configured_for_at_least_once_delivery():
    from radgestmat.celery import app

    assert send_task.acks_late is True
    assert send_task.max_retries == 2
    assert send_task.soft_time_limit < send_task.time_limit < app.conf.broker_transport_options["visibility_timeout"]
    assert app.amqp.router.route({}, send_task.name)["queue"].name == "notifications"
    assert app.conf.task_serializer == "json" and app.conf.worker_prefetch_multiplier == 1


def test_a_message_left_over_from_before_a_rearm_does_not_send_early(mailoutbox):
    """GIVEN a reminder whose task was queued, then re-armed to a later time (the loan was extended)
    WHEN the leftover task message arrives now
    THEN nothing is sent and the row still waits for its new time, when the relay sends it."""
    log = make_log("RAPPEL_2H", "EMAIL")
    later = timezone.now() + timezone.timedelta(hours=2)
    NotificationLog.objects.filter(pk=log.pk).update(date_scheduled=later)

    assert send(log) is None
    assert mailoutbox == []
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.EN_ATTENTE


def test_a_day_before_reminder_claimed_after_midnight_is_cancelled_not_sent_saying_tomorrow(mailoutbox):
    """A J-1 retry that comes round on the due day would tell the borrower "tomorrow": it is cancelled with
    its reason; the due day's own reminder (RAPPEL_FINAL) says "today"."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from assets.tests.factories import AttributionFactory

    paris = ZoneInfo("Europe/Paris")
    loan = AttributionFactory(
        date_debut=datetime(2026, 12, 1, 10, tzinfo=paris), date_retour_prevue=datetime(2026, 12, 10, 18, tzinfo=paris)
    )
    log = make_log("RAPPEL_J_MOINS_1", "EMAIL", attribution=loan)

    assert send_notification(log.pk, now=datetime(2026, 12, 10, 0, 5, tzinfo=paris)) == Statut.ANNULEE

    log.refresh_from_db()
    assert (log.reason_code, log.nb_tentatives) == ("PAST_ITS_DAY", 0)
    assert mailoutbox == []
