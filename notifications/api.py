"""The one module of notifications the lending app (assets) imports: what its pages show and edit.

Notifications hears about loans through the signals of `assets.signals`; the lending app
reads notification data through the names below and nothing else of this package
(`[tool.importlinter]` in pyproject.toml checks it, see docs/architecture.md).
"""

from __future__ import annotations

from .models import Canal, NotificationLog, NotificationPreferences, Statut, late_cutoff
from .recipients import preferences_of
from .scheduler_status import forget_scheduler_status, scheduler_status

__all__ = [
    "Canal",
    "NotificationLog",
    "NotificationPreferences",
    "Statut",
    "forget_scheduler_status",
    "late_cutoff",
    "preferences_of",
    "scheduler_status",
]
