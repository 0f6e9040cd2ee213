"""The database goes away between the provider accepting a message and the row being marked sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, connection

from notifications.models import NotificationLog, Statut
from notifications.sending import OutcomeNotRecorded, send_notification

from .conftest import make_log

pytestmark = pytest.mark.django_db(transaction=True)


class DatabaseAway:
    """Fails the first ``times`` "mark sent" UPDATEs as a connection cut by a database restart would."""

    def __init__(self, times: int):
        self.left = times

    def __call__(self, execute, sql, params, many, context):
        if self.left and sql.startswith("UPDATE") and Statut.ENVOYEE in (params or ()):
            self.left -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def test_a_send_is_recorded_once_the_database_is_back(mailoutbox, settings, monkeypatch):
    """GIVEN the SMTP server accepted the message WHEN marking it sent fails twice (database restarting)
    THEN the worker tries again on a new connection and the row ends ENVOYEE: the relay has nothing to resend."""
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.01,))
    log = make_log("CREATION", "EMAIL")

    with connection.execute_wrapper(DatabaseAway(times=2)):
        outcome = send_notification(log.pk, now=log.date_scheduled)

    assert outcome == Statut.ENVOYEE
    assert len(mailoutbox) == 1
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.ENVOYEE


def test_it_gives_up_before_the_soft_time_limit_and_says_so(mailoutbox, settings, monkeypatch, caplog):
    monkeypatch.setattr("notifications.sending._unrecorded_sends", {})
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 2
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.2,))
    log = make_log("CREATION", "EMAIL")

    with connection.execute_wrapper(DatabaseAway(times=1000)), pytest.raises(OutcomeNotRecorded):
        send_notification(log.pk, now=log.date_scheduled)

    assert len(mailoutbox) == 1
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.EN_COURS  # the relay decides later
    assert "was sent but could not be recorded" in caplog.text


def test_a_send_not_recorded_in_time_is_recorded_by_the_next_task_even_once_given_up(mailoutbox, settings, monkeypatch):
    """GIVEN the mail server accepted a message WHEN the database stays away past the soft time limit
    (a network cut) and the relay meanwhile takes the live worker for dead and gives the row up as
    ambiguous THEN the worker's next task writes ENVOYEE: the borrower got it once, the row says so."""
    from notifications import sending
    from notifications.models import CodeErreur

    settings.CELERY_TASK_SOFT_TIME_LIMIT = 2
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.2,))
    monkeypatch.setattr(sending, "_unrecorded_sends", {})
    log, other = make_log("CREATION", "EMAIL"), make_log("CREATION", "EMAIL")

    with connection.execute_wrapper(DatabaseAway(times=1000)), pytest.raises(OutcomeNotRecorded):
        send_notification(log.pk, now=log.date_scheduled)
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.AMBIGUOUS, erreur_message="may have gone out"
    )
    assert send_notification(other.pk, now=other.date_scheduled) == Statut.ENVOYEE

    row = NotificationLog.objects.get(pk=log.pk)
    assert (row.statut, row.erreur_code, row.erreur_message) == (Statut.ENVOYEE, "", "")
    assert row.date_envoi is not None
    assert len(mailoutbox) == 2
    assert sending._unrecorded_sends == {}


def test_the_relay_records_its_own_processs_late_sends_before_recovering_stranded_claims(
    mailoutbox, settings, monkeypatch
):
    from notifications import relay, sending

    settings.CELERY_TASK_SOFT_TIME_LIMIT = 2
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.2,))
    monkeypatch.setattr(sending, "_unrecorded_sends", {})
    log = make_log("CREATION", "EMAIL")
    with connection.execute_wrapper(DatabaseAway(times=1000)), pytest.raises(OutcomeNotRecorded):
        send_notification(log.pk, now=log.date_scheduled)

    # Long after: the claim would count as stranded, and an email is resent.
    relay.dispatch_due_notifications(now=log.date_scheduled + timedelta(hours=1))

    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.ENVOYEE
    assert len(mailoutbox) == 1


class DatabaseAwayAfterClaim:
    """The database goes away right after the claim (its next query fails), then comes back for ``down`` queries."""

    def __init__(self, down: int):
        self.claimed = False
        self.down = down

    def __call__(self, execute, sql, params, many, context):
        if self.claimed and self.down:
            self.down -= 1
            raise OperationalError("server closed the connection unexpectedly")
        result = execute(sql, params, many, context)
        values = params.values() if isinstance(params, dict) else (params or ())
        self.claimed = self.claimed or ("UPDATE" in sql and Statut.EN_COURS in values)  # the claim's statement
        return result


def test_a_row_claimed_when_the_database_went_away_is_put_back_not_stranded(mailoutbox, monkeypatch):
    """GIVEN a row just claimed WHEN the database goes away before the provider is called THEN nothing is
    sent, the row is put back (EN_ATTENTE, attempt not counted) and the database error goes to Celery's
    retry — not left EN_COURS, which the relay would give up as "may have gone out" for WhatsApp."""
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.01,))
    log = make_log("CREATION", "EMAIL")

    with connection.execute_wrapper(DatabaseAwayAfterClaim(down=2)), pytest.raises(OperationalError):
        send_notification(log.pk, now=log.date_scheduled)

    row = NotificationLog.objects.get(pk=log.pk)
    assert (row.statut, row.nb_tentatives, row.date_claimed) == (Statut.EN_ATTENTE, 0, None)
    assert mailoutbox == []
    assert send_notification(log.pk, now=log.date_scheduled) == Statut.ENVOYEE
    assert len(mailoutbox) == 1
