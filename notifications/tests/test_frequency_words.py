"""The spec's words for a job's cadence, from interval and crontab beat entries alike."""

from __future__ import annotations

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from notifications.scheduler_status import describe_frequency

pytestmark = pytest.mark.django_db


def entry(**schedule) -> PeriodicTask:
    return PeriodicTask(name="job", task="tasks.job", **schedule)


@pytest.mark.parametrize(
    ("every", "period", "words"),
    [
        (30, "minutes", "Every 30 min"),
        (15, "minutes", "Every 15 min"),
        (1, "minutes", "Every minute"),
        (12, "hours", "Every 12 hours"),
        (1, "hours", "Every hour"),
        (10, "seconds", "Every 10 s"),
        (1, "days", "Daily"),
    ],
)
def test_an_interval_entry_in_words(every, period, words):
    interval = IntervalSchedule.objects.create(every=every, period=period)
    assert describe_frequency(entry(interval=interval)) == words


@pytest.mark.parametrize(
    ("minute", "hour", "words"),
    [
        ("*/30", "*", "Every 30 min"),
        ("*", "*", "Every minute"),
        ("0", "*/12", "Every 12 hours"),
        ("0", "8", "Daily @ 8:00 AM"),
        ("0", "2", "Daily @ 2:00 AM"),
        ("30", "14", "Daily @ 2:30 PM"),
        ("0", "0", "Daily @ 12:00 AM"),
    ],
)
def test_a_crontab_entry_in_words(minute, hour, words):
    crontab = CrontabSchedule.objects.create(minute=minute, hour=hour, timezone="Europe/Paris")
    assert describe_frequency(entry(crontab=crontab)) == words


def test_a_crontab_with_no_simple_wording_shows_its_expression():
    crontab = CrontabSchedule.objects.create(minute="0", hour="8", day_of_week="1-5", timezone="Europe/Paris")
    assert describe_frequency(entry(crontab=crontab)) == "0 8 * * 1-5 (Europe/Paris)"
