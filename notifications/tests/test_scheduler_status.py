"""`get_scheduler_status()` and `manage.py scheduler_status`, against the real Redis broker."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from notifications.schedule import register_schedule
from notifications.scheduler_status import get_scheduler_status
from notifications.tests.conftest import make_log

pytestmark = pytest.mark.django_db


def test_it_lists_the_jobs_with_last_and_next_run_and_counts_the_rows():
    register_schedule()
    now = timezone.now()
    PeriodicTask.objects.filter(name="dispatch_due_notifications").update(last_run_at=now - timedelta(seconds=30))
    PeriodicTask.objects.filter(name="cleanup_old_notifications").update(enabled=False)
    late = make_log()
    late.date_scheduled = now - timedelta(minutes=10)
    late.save()
    retrying = make_log()
    # Failed, waiting for its retry in a minute: failed, but not late.
    retrying.statut, retrying.nb_tentatives = "ECHEC", 1
    retrying.date_scheduled = now - timedelta(minutes=30)
    retrying.date_tentative_prochaine = now + timedelta(minutes=1)
    retrying.save()

    status = get_scheduler_status(now=now, ping_timeout=0.2)

    jobs = {job["name"]: job for job in status["jobs"]}
    assert jobs["dispatch_due_notifications"]["last_run"] == now - timedelta(seconds=30)
    assert timedelta(0) < jobs["dispatch_due_notifications"]["next_run"] - now <= timedelta(minutes=1)
    assert jobs["check_court_terme_reminders"]["schedule"].startswith("*/30 * * * *")
    assert jobs["cleanup_old_notifications"]["enabled"] is False
    assert jobs["cleanup_old_notifications"]["next_run"] is None
    assert status["queues"]["ok"] is True and set(status["queues"]["lengths"]) == {
        "notifications_priority",
        "default",
        "notifications",
    }
    assert status["workers"]["ok"] is False  # no worker runs in this test
    assert status["notifications"]["waiting"] == 1 and status["notifications"]["late"] == 1
    assert status["notifications"]["failed"] == 1 and status["notifications"]["due"] == 1
    assert status["healthy"] is False
    assert any("due more than 10 minutes ago" in problem for problem in status["problems"])


def test_a_missing_registration_is_a_problem_not_a_crash():
    status = get_scheduler_status(ping_timeout=0.2)
    assert {job["registered"] for job in status["jobs"]} == {False}
    assert any("setup_schedule" in problem for problem in status["problems"])


def test_the_command_prints_a_table_or_json():
    register_schedule()
    out = StringIO()
    call_command("scheduler_status", stdout=out)
    assert "check_long_terme_reminders" in out.getvalue() and "0 8 * * *" in out.getvalue()
    out = StringIO()
    call_command("scheduler_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert [job["name"] for job in data["jobs"]][0] == "dispatch_due_notifications"
    assert set(data["notifications"]) >= {"waiting", "due", "failed", "failed_permanently"}
