"""The one module of notifications the lending app (assets) imports: what its pages show and edit.

Notifications hears about loans through the signals of `assets.signals`; the lending app
reads notification data through the names below and nothing else of this package
(`[tool.importlinter]` in pyproject.toml checks it, see docs/architecture.md).
"""

from __future__ import annotations

from .channels.twilio_api import twilio_client
from .inbound import messages_of as borrower_messages_of
from .inbound import recent_requests as recent_borrower_requests
from .models import (
    Canal,
    MessageOverride,
    NotificationLog,
    NotificationPreferences,
    Statut,
    TypeNotification,
    WhatsAppConfig,
    late_cutoff,
)
from .recipients import (
    NOT_CONFIGURED,
    REMINDER_FLAGS,
    Reachability,
    preferences_of,
    reachability,
    reachable_loans,
    stop_reminders,
)
from .scheduler_status import forget_scheduler_status, scheduler_status
from .sending import send_now

__all__ = [
    "NOT_CONFIGURED",
    "REMINDER_FLAGS",
    "Canal",
    "MessageOverride",
    "NotificationLog",
    "NotificationPreferences",
    "Reachability",
    "Statut",
    "TypeNotification",
    "WhatsAppConfig",
    "borrower_messages_of",
    "forget_scheduler_status",
    "late_cutoff",
    "preferences_of",
    "reachability",
    "reachable_loans",
    "recent_borrower_requests",
    "scheduler_status",
    "send_now",
    "stop_reminders",
    "twilio_client",
]
