"""The relay sends what is due, in bounded batches, and recovers what a lost message or a dead worker stranded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import relay
from notifications.models import NotificationLog, Statut

from .conftest import make_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_relay(django_capture_on_commit_callbacks):
    def run(now=None):
        with django_capture_on_commit_callbacks(execute=True):
            return relay.dispatch_due_notifications(now=now or timezone.now())

    return run


def reload(log):
    log.refresh_from_db()
    return log


def test_a_due_row_is_sent_and_a_future_one_waits(run_relay, mailoutbox):
    due = make_log("CREATION")
    later = make_log("CREATION")
    later.date_scheduled = timezone.now() + timedelta(minutes=5)
    later.save()
    report = run_relay()
    assert report.enqueued == 1
    assert reload(due).statut == Statut.ENVOYEE
    assert reload(later).statut == Statut.EN_ATTENTE
    assert len(mailoutbox) == 1


def test_a_row_claimed_by_a_worker_that_died_is_sent_again(run_relay, mailoutbox, settings):
    """GIVEN a row claimed (EN_COURS) longer ago than the task's hard time limit, one attempt used
    WHEN the relay runs
    THEN it is claimable again and sent, with its attempts counted in the row."""
    log = make_log("CREATION")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS,
        nb_tentatives=1,
        date_claimed=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60),
    )
    report = run_relay()
    assert report.recovered == 1
    log = reload(log)
    assert log.statut == Statut.ENVOYEE and log.nb_tentatives == 2
    assert len(mailoutbox) == 1


def test_a_whatsapp_row_stranded_mid_send_is_not_sent_again(run_relay, fake_twilio, settings):
    """GIVEN a WhatsApp row whose worker died after claiming it (Twilio may have accepted the message)
    WHEN the relay runs
    THEN it is not resent (no duplicate on the borrower's phone) and the row says why."""
    log = make_log("CREATION", "WHATSAPP")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS,
        nb_tentatives=1,
        date_claimed=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60),
    )
    report = run_relay()
    assert report.failed_permanently == 1 and report.recovered == 0
    log = reload(log)
    assert log.statut == Statut.ECHEC_PERMANENT and "Twilio" in log.reason_text
    assert fake_twilio.server.log == []


def test_a_claim_younger_than_the_hard_time_limit_is_left_to_its_worker(run_relay, mailoutbox):
    log = make_log("CREATION")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS, nb_tentatives=1, date_claimed=timezone.now() - timedelta(seconds=30)
    )
    assert run_relay().recovered == 0
    assert reload(log).statut == Statut.EN_COURS and mailoutbox == []


def test_a_stranded_row_out_of_attempts_fails_permanently_with_the_reason(run_relay, mailoutbox, settings):
    log = make_log("CREATION")
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS,
        nb_tentatives=settings.NOTIFICATION_MAX_ATTEMPTS,
        date_claimed=timezone.now() - timedelta(hours=1),
    )
    assert run_relay().failed_permanently == 1
    log = reload(log)
    assert log.statut == Statut.ECHEC_PERMANENT and "worker" in log.reason_text
    assert mailoutbox == []


def test_a_failed_row_whose_retry_message_was_lost_is_retried(run_relay, mailoutbox):
    lost = make_log("CREATION")
    pending = make_log("CREATION")
    NotificationLog.objects.filter(pk=lost.pk).update(
        statut=Statut.ECHEC, nb_tentatives=1, date_tentative_prochaine=timezone.now() - timedelta(minutes=30)
    )
    NotificationLog.objects.filter(pk=pending.pk).update(
        statut=Statut.ECHEC, nb_tentatives=1, date_tentative_prochaine=timezone.now() + timedelta(minutes=1)
    )
    run_relay()
    assert reload(lost).statut == Statut.ENVOYEE
    assert reload(pending).statut == Statut.ECHEC  # its own retry is still on its way
    assert len(mailoutbox) == 1


def test_an_enqueued_row_is_not_enqueued_again_until_the_message_must_be_lost(
    settings, django_capture_on_commit_callbacks
):
    settings.RELAY_REDELIVER_MINUTES = 5
    log = make_log("CREATION")
    now = timezone.now()
    # Enqueued, but no worker takes it (the message is lost): callbacks not executed.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert relay.dispatch_due_notifications(now=now).enqueued == 1
    assert len(callbacks) == 1
    assert relay.dispatch_due_notifications(now=now + timedelta(minutes=4)).enqueued == 0
    assert relay.dispatch_due_notifications(now=now + timedelta(minutes=5)).enqueued == 1
    assert reload(log).statut == Statut.EN_ATTENTE


def test_reminders_that_no_longer_matter_are_cancelled_not_sent(run_relay, mailoutbox):
    returned = make_log("RAPPEL_2H")
    returned.attribution.date_retour_effective = timezone.now()
    returned.attribution.save()
    alert = make_log("RETARD", attribution=returned.attribution, niveau_escalade=1)
    too_late = make_log("RAPPEL_2H")
    too_late.attribution.date_debut = timezone.now() - timedelta(hours=3)
    too_late.attribution.date_retour_prevue = timezone.now() - timedelta(minutes=1)
    too_late.attribution.save()
    assert run_relay().cancelled == 3
    for log in (returned, alert, too_late):
        assert reload(log).statut == Statut.ANNULEE
    assert mailoutbox == []


def test_the_relay_works_in_bounded_batches(settings, django_capture_on_commit_callbacks):
    settings.RELAY_BATCH_SIZE = 3
    settings.RELAY_MAX_BATCHES = 2
    for _ in range(10):
        make_log("CREATION")
    with django_capture_on_commit_callbacks(execute=False):
        first = relay.dispatch_due_notifications(now=timezone.now())
        second = relay.dispatch_due_notifications(now=timezone.now())
    assert (first.enqueued, first.batches) == (6, 2)
    assert second.enqueued == 4
