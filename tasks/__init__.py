"""Celery tasks only: thin wrappers that look up ids and call services.

    from tasks import send_notification, check_court_terme_reminders, ...
"""

from .sending import send_notification

__all__ = ["send_notification"]
