"""The original spec's email entry point (its "Testing" section): `NotificationEmailService.send_notification(log)`.

A thin layer over `notifications.api.send_now` (claim, attempts, audit), the one send path the
workers use; nothing is built or sent here. Imported lazily so `assets` stays free of
`notifications` at import time.
"""

from __future__ import annotations

from typing import Any


class NotificationEmailService:
    """The spec's "email service": sends one `NotificationLog` row now, through the real send service."""

    @staticmethod
    def send_notification(notification: Any) -> bool:
        """Send ``notification`` (a NotificationLog) now; refresh it; True when its statut is ENVOYEE."""
        from django.utils import timezone

        from notifications.api import send_now

        return send_now(notification, now=timezone.now())
