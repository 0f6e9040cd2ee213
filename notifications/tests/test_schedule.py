"""The beat schedule: one definition, registered idempotently, admin edits kept, each entry expiring in time."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

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
    created, moved, kept = schedule.register_schedule()
    assert sorted(created) == sorted(SPEC) and moved == kept == []
    court = PeriodicTask.objects.get(name="check_court_terme_reminders")
    # An admin makes the short check run every 10 minutes and switches the cleanup off.
    court.crontab = CrontabSchedule.objects.create(minute="*/10", timezone="UTC")
    court.save()
    PeriodicTask.objects.filter(name="cleanup_old_notifications").update(enabled=False)
    snapshot = list(PeriodicTask.objects.order_by("name").values())

    call_command("setup_schedule")
    created, moved, kept = schedule.register_schedule()

    assert created == moved == [] and sorted(kept) == sorted(SPEC)
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


SUB_HOURLY = {
    "dispatch_due_notifications",
    "check_court_terme_reminders",
    "check_overdue_materials",
    "check_notification_alerts",
}


@pytest.mark.django_db
def test_sub_hourly_jobs_are_crontabs_in_utc_and_the_local_hour_jobs_stay_local(settings):
    schedule.register_schedule()
    zones = {entry.name: str(entry.crontab.timezone) for entry in PeriodicTask.objects.select_related("crontab")}
    assert {name for name, zone in zones.items() if zone == "UTC"} == SUB_HOURLY
    assert {name for name, zone in zones.items() if zone == settings.TIME_ZONE} == set(SPEC) - SUB_HOURLY
    # Paris is whole hours from UTC: the overdue check still runs on the local quarter-hours.
    after = schedule.next_run_of("check_overdue_materials", paris(2026, 10, 25, 1, 7))
    assert after.astimezone(paris(2026, 1, 1).tzinfo).minute == 15


def register_the_old_way(overrides: dict[str, dict]) -> None:
    """The entries as installs before the DST fix have them: every crontab in Europe/Paris."""
    for job in schedule.beat_schedule():
        fields = {**job.crontab_fields, **overrides.get(job.name, {}).get("crontab", {})}
        cron, _ = CrontabSchedule.objects.get_or_create(**fields, timezone="Europe/Paris")
        PeriodicTask.objects.create(
            name=job.name,
            task=job.task,
            crontab=cron,
            expire_seconds=job.expires,
            enabled=overrides.get(job.name, {}).get("enabled", True),
        )


@pytest.mark.django_db
def test_setup_schedule_moves_an_old_install_to_utc_keeping_the_admin_edits():
    """GIVEN an install from before the DST fix (all crontabs in Europe/Paris), where an admin made the short
    check run every 20 minutes, switched the alert check off, and limited the overdue check to office hours,
    WHEN setup_schedule runs (the release step), twice,
    THEN the sub-hourly entries run on UTC crontabs with the admin's cadence and "enabled" box; the overdue
    check limited to local hours and the local-hour jobs stay on Paris; the second run changes nothing."""
    register_the_old_way(
        {
            "check_court_terme_reminders": {"crontab": {"minute": "*/20"}},
            "check_notification_alerts": {"enabled": False},
            "check_overdue_materials": {"crontab": {"hour": "8-18"}},
        }
    )

    out = StringIO()
    call_command("setup_schedule", stdout=out)

    entries = {entry.name: entry for entry in PeriodicTask.objects.select_related("crontab")}
    court, alerts = entries["check_court_terme_reminders"], entries["check_notification_alerts"]
    relay = entries["dispatch_due_notifications"]
    assert (court.crontab.minute, str(court.crontab.timezone)) == ("*/20", "UTC")
    assert (alerts.enabled, str(alerts.crontab.timezone)) == (False, "UTC")
    assert (relay.crontab.minute, str(relay.crontab.timezone), relay.expire_seconds) == ("*", "UTC", 50)
    overdue = entries["check_overdue_materials"]
    assert (overdue.crontab.hour, str(overdue.crontab.timezone)) == ("8-18", "Europe/Paris")
    for name in set(SPEC) - SUB_HOURLY:
        assert str(entries[name].crontab.timezone) == "Europe/Paris", name
    assert "moved   check_court_terme_reminders" in out.getvalue()
    assert schedule.next_run_of("check_court_terme_reminders", paris(2026, 10, 25, 1, 7)) == paris(2026, 10, 25, 1, 20)

    snapshot = list(PeriodicTask.objects.order_by("name").values())
    assert schedule.register_schedule()[:2] == ([], [])
    assert list(PeriodicTask.objects.order_by("name").values()) == snapshot
