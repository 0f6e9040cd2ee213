"""The beat schedule: one definition, registered idempotently, admin edits kept, each entry expiring in time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from notifications import schedule

from .beat import paris

SPEC = {
    "check_court_terme_reminders": timedelta(minutes=30),
    "check_moyen_terme_reminders": timedelta(hours=12),
    "check_long_terme_reminders": timedelta(days=1),
    "check_overdue_materials": timedelta(minutes=15),
    "cleanup_old_notifications": timedelta(days=1),
    "dispatch_due_notifications": timedelta(minutes=1),
    "check_notification_alerts": timedelta(minutes=5),
}


def test_the_schedule_has_the_spec_jobs_each_expiring_before_its_next_run():
    from radgestmat.celery import app

    jobs = {job.name: job for job in schedule.beat_schedule()}
    assert set(jobs) == set(SPEC)
    for name, period in SPEC.items():
        job = jobs[name]
        assert job.task in app.tasks, f"{job.task} is not a registered task"
        first = schedule.next_cron_time(crontab(**job.crontab_fields), paris(2026, 3, 10, 9, 7))
        second = schedule.next_cron_time(crontab(**job.crontab_fields), first)
        assert second - first == period, name
        assert 0 < job.expires < period.total_seconds(), name


def test_the_long_check_runs_at_0800_local_on_both_sides_of_a_dst_change():
    from assets.models import elapsed

    daily = crontab(minute="0", hour="8")
    before = schedule.next_cron_time(daily, paris(2026, 3, 27, 9, 0))
    after = schedule.next_cron_time(daily, before)
    assert before == paris(2026, 3, 28, 8, 0)
    assert after == paris(2026, 3, 29, 8, 0)  # clocks went forward that night
    assert elapsed(before, after) == timedelta(hours=23)


@pytest.mark.django_db
def test_registering_twice_changes_nothing_and_keeps_an_admin_edit():
    created, kept = schedule.register_schedule()
    assert sorted(created) == sorted(SPEC) and kept == []
    court = PeriodicTask.objects.get(name="check_court_terme_reminders")
    # An admin makes the short check run every 10 minutes and switches the cleanup off.
    court.crontab = CrontabSchedule.objects.create(minute="*/10", timezone="Europe/Paris")
    court.save()
    PeriodicTask.objects.filter(name="cleanup_old_notifications").update(enabled=False)
    snapshot = list(PeriodicTask.objects.order_by("name").values())

    call_command("setup_schedule")
    created, kept = schedule.register_schedule()

    assert created == [] and sorted(kept) == sorted(SPEC)
    assert list(PeriodicTask.objects.order_by("name").values()) == snapshot
    assert PeriodicTask.objects.get(name="check_court_terme_reminders").crontab.minute == "*/10"
    assert PeriodicTask.objects.filter(name__in=SPEC).count() == len(SPEC)


@pytest.mark.django_db
def test_a_check_plans_ahead_to_its_next_run_as_edited_in_the_admin(settings):
    settings.PLANNING_MARGIN_MINUTES = 10
    now = paris(2026, 3, 10, 9, 0)
    assert schedule.planning_horizon("check_moyen_terme_reminders", now) == paris(2026, 3, 10, 12, 10)
    schedule.register_schedule()
    entry = PeriodicTask.objects.get(name="check_moyen_terme_reminders")
    entry.crontab = CrontabSchedule.objects.create(minute="0", hour="20", timezone="Europe/Paris")
    entry.save()
    assert schedule.planning_horizon("check_moyen_terme_reminders", now) == paris(2026, 3, 10, 20, 10)
