"""With a real worker on Redis: beat's relay task sends what is due, and the status sees the worker."""

from __future__ import annotations

import pytest

import tasks
from notifications.models import Statut
from notifications.scheduler_status import get_scheduler_status
from radgestmat.testing.net import wait_until as wait_for

from .conftest import make_log


@pytest.mark.django_db(transaction=True)
def test_the_relay_task_on_a_real_worker_sends_what_is_due(live_worker, smtp_sink):
    log = make_log("CREATION", "EMAIL", email="camille@example.org")

    tasks.dispatch_due_notifications.delay()  # as beat does every minute

    def sent():
        log.refresh_from_db()
        return log.statut == Statut.ENVOYEE

    wait_for(sent, timeout=30, what="the relay's send")
    assert [m["To"] for m in smtp_sink.messages] and "camille@example.org" in smtp_sink.messages[0]["To"]

    status = get_scheduler_status(ping_timeout=2.0)
    assert status["workers"]["ok"] is True and status["workers"]["workers"]
    assert status["notifications"]["waiting"] == 0
