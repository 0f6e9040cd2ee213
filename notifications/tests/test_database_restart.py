"""The database goes away between the provider accepting a message and the row being marked sent."""

from __future__ import annotations

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
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 2
    monkeypatch.setattr("notifications.sending.RECORD_RETRY_DELAYS", (0.2,))
    log = make_log("CREATION", "EMAIL")

    with connection.execute_wrapper(DatabaseAway(times=1000)), pytest.raises(OutcomeNotRecorded):
        send_notification(log.pk, now=log.date_scheduled)

    assert len(mailoutbox) == 1
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.EN_COURS  # the relay decides later
    assert "was sent but could not be recorded" in caplog.text


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
        self.claimed = self.claimed or (sql.startswith("UPDATE") and Statut.EN_COURS in (params or ()))
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
