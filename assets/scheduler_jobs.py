"""The original spec's five jobs, callable with no arguments (its "Testing": `check_court_terme_reminders()`).

Each runs the Celery task beat starts, in this process: the same code, the same `now`.
Imported lazily so `assets` stays free of `tasks` and `notifications` at import time.
"""

from __future__ import annotations


def check_court_terme_reminders() -> int:
    """Plan the short loans' reminders (beat: every 30 min); returns how many went out at once."""
    from tasks.periodic import check_court_terme_reminders as task

    return task()


def check_moyen_terme_reminders() -> int:
    """Plan the medium loans' reminders (beat: every 12 hours)."""
    from tasks.periodic import check_moyen_terme_reminders as task

    return task()


def check_long_terme_reminders() -> int:
    """Plan the long loans' J-2, J-1 and due-day reminders (beat: daily at 08:00)."""
    from tasks.periodic import check_long_terme_reminders as task

    return task()


def check_overdue_materials() -> int:
    """Plan the overdue alerts (beat: every 15 min)."""
    from tasks.periodic import check_overdue_materials as task

    return task()


def cleanup_old_notifications() -> dict[str, int]:
    """Delete finished notification rows past the retention (beat: daily at 02:00)."""
    from tasks.periodic import cleanup_old_notifications as task

    return task()
