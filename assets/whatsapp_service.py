"""The original spec's WhatsApp entry point: `WhatsAppNotificationService` (its "Testing" and "Troubleshooting").

A thin layer over `notifications.api.send_now` and the Twilio channel's client; nothing is sent
here that the workers would not send the same way. Imported lazily so `assets` stays free
of `notifications` at import time.
"""

from __future__ import annotations

from typing import Any


class WhatsAppNotificationService:
    """The spec's "WhatsApp service": send one `NotificationLog` row now; show the configured Twilio client."""

    @staticmethod
    def send_notification(notification: Any) -> bool:
        """Send ``notification`` (a NotificationLog) now; refresh it; True when its statut is ENVOYEE."""
        from django.utils import timezone

        from notifications.api import send_now

        return send_now(notification, now=timezone.now())

    @staticmethod
    def _get_twilio_client() -> Any:
        """The `twilio.rest.Client` the WhatsApp and SMS channels use (credentials from the environment)."""
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from notifications.api import twilio_client

        if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN):
            raise ImproperlyConfigured("Twilio is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.")
        return twilio_client()
