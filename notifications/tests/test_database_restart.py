"""The database goes away between the provider accepting a message and the row being marked sent."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from notifications.models import NotificationLog, Statut
from notifications.sending import send_notification

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

    with connection.execute_wrapper(DatabaseAway(times=1000)), pytest.raises(OperationalError):
        send_notification(log.pk, now=log.date_scheduled)

    assert len(mailoutbox) == 1
    assert NotificationLog.objects.get(pk=log.pk).statut == Statut.EN_COURS  # the relay decides later
    assert "was sent but could not be recorded" in caplog.text
