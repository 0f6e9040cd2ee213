"""Celery tasks only: thin wrappers that look up ids and call services.

from tasks import send_notification, check_court_terme_reminders, ...
"""

from .alerts import check_notification_alerts
from .periodic import (
    check_court_terme_reminders,
    check_long_terme_reminders,
    check_moyen_terme_reminders,
    check_overdue_materials,
    cleanup_old_notifications,
    dispatch_due_notifications,
)
from .sending import send_notification

__all__ = [
    "send_notification",
    "check_court_terme_reminders",
    "check_moyen_terme_reminders",
    "check_long_terme_reminders",
    "check_overdue_materials",
    "cleanup_old_notifications",
    "dispatch_due_notifications",
    "check_notification_alerts",
]
