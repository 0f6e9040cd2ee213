"""A mail server that answers the end of a message late: waited for, and never a second copy.

RFC 5321 §4.5.3.2.6 gives the reply to the end of DATA ten minutes; EMAIL_TIMEOUT is
for connecting and commands. The sink (aiosmtpd) holds its reply until `release` is set.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications import relay
from notifications.models import CodeErreur, NotificationLog, Statut
from notifications.sending import send_notification

from .conftest import make_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_sink(smtp_sink, settings):
    settings.EMAIL_TIMEOUT = 1
    smtp_sink.release = threading.Event()
    return smtp_sink


def test_a_250_after_the_command_timeout_is_waited_for_and_the_email_counts_as_sent(slow_sink, settings):
    settings.EMAIL_END_OF_DATA_TIMEOUT = 30
    log = make_log("CREATION", "EMAIL")
    threading.Timer(2.5, slow_sink.release.set).start()  # the server answers "250" 2.5 s after the final "."

    assert send_notification(log.pk, now=timezone.now()) == Statut.ENVOYEE

    log.refresh_from_db()
    assert log.erreur_code == ""
    assert len(slow_sink.messages) == 1


def test_no_reply_to_the_end_of_data_is_ambiguous_and_not_retried(slow_sink, settings):
    settings.EMAIL_END_OF_DATA_TIMEOUT = 2
    log = make_log("CREATION", "EMAIL")

    outcome = send_notification(log.pk, now=timezone.now())  # no RetryLater: nothing will send it again

    log.refresh_from_db()
    assert outcome == Statut.ECHEC_PERMANENT
    assert log.erreur_code == CodeErreur.AMBIGUOUS
    assert "may have accepted it" in log.erreur_message
    assert len(slow_sink.messages) == 1


def test_an_email_whose_worker_died_awaiting_the_reply_is_not_resent(
    smtp_sink, settings, django_capture_on_commit_callbacks
):
    """GIVEN a claimed email row marked, before its final ".", as maybe accepted, whose worker then died
    WHEN the relay recovers stranded claims THEN the row is given up as ambiguous, not sent again."""
    log = make_log("CREATION", "EMAIL")
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + relay.CLAIM_MARGIN
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_COURS,
        nb_tentatives=1,
        erreur_code=CodeErreur.AMBIGUOUS,
        date_claimed=timezone.now() - limit - timedelta(seconds=1),
    )

    with django_capture_on_commit_callbacks(execute=True):
        relay.dispatch_due_notifications(now=timezone.now())

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC_PERMANENT
    assert log.erreur_code == CodeErreur.AMBIGUOUS
    assert "waiting for the mail server" in log.reason_text
    assert smtp_sink.messages == []


@pytest.mark.django_db(transaction=True)  # the watcher thread reads the row on its own connection
def test_the_channel_marks_the_row_before_the_end_of_data(slow_sink, settings):
    """What the relay relies on above: while the server holds its reply, the claimed row says AMBIGUOUS."""
    settings.EMAIL_END_OF_DATA_TIMEOUT = 30
    log = make_log("CREATION", "EMAIL")
    seen = []

    def look_then_answer():
        slow_sink.received.wait(10)
        try:
            seen.append(NotificationLog.objects.values_list("statut", "erreur_code").get(pk=log.pk))
        finally:
            connection.close()
            slow_sink.release.set()

    watcher = threading.Thread(target=look_then_answer)
    watcher.start()
    assert send_notification(log.pk, now=timezone.now()) == Statut.ENVOYEE
    watcher.join()

    assert seen == [(Statut.EN_COURS, CodeErreur.AMBIGUOUS)]
