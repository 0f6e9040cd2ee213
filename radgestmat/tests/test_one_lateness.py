"""The dashboard banner, /scheduler/ and /healthz call the same notification late (one threshold)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assets import dashboard
from notifications.scheduler_status import rows_status
from notifications.tests.conftest import make_log
from radgestmat import health

pytestmark = pytest.mark.django_db


def lateness_seen(now) -> dict[str, bool]:
    return {
        "dashboard": dashboard.alerts(now)["stuck"] > 0,
        "scheduler": rows_status(now)["late"] > 0,
        "healthz": not health.check_backlog(now)["ok"],
    }


@pytest.mark.parametrize("minutes_ago", [1, 5, 15])
def test_the_three_views_agree_on_a_waiting_row(settings, minutes_ago):
    now = timezone.now()
    row = make_log()
    row.date_scheduled = now - timedelta(minutes=minutes_ago)
    row.save()
    expected = minutes_ago > settings.NOTIFICATION_BACKLOG_MAX_MINUTES
    assert lateness_seen(now) == {"dashboard": expected, "scheduler": expected, "healthz": expected}
