"""The channel registry: each channel declared once, in `REGISTRY`.

A `ChannelSpec` says what the rest of the app needs to know about one channel: the
value stored in ``NotificationLog.canal`` and its label (`models.Canal` is derived
from them), the class that sends, the borrower's preference flag that switches it
on, its quiet hours and daily cap (from settings), whether it is configured, and
whether it is a first choice or only the fallback after another channel.

Adding a channel is one module here (a `Channel` subclass), its message templates,
one entry below, its preference field, and its routing rule in `notifications.recipients`
(docs/architecture.md). This module imports no model: the models import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from .base import AmbiguousError, Channel, ChannelError, PermanentError, TransientError

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@dataclass(frozen=True)
class ChannelSpec:
    canal: str  # the stored value: migration-visible, never renamed
    label: StrOrPromise  # lazy: translated where it is shown
    path: str  # the `Channel` class that sends
    preference_flag: str  # the `NotificationPreferences` field that switches it on for a borrower
    address: str  # "email" or "phone": what it sends to
    fallback_after: str = ""  # planned only when this channel failed for good ("" = a first choice)
    planning_setting: str = ""  # a setting that must be true for it to be planned at all

    @property
    def quiet_hours(self) -> str:
        """The quiet period as "HH:MM-HH:MM" (QUIET_HOURS_<CANAL>), or "" when it may send at any hour."""
        return settings.QUIET_HOURS.get(self.canal, "")

    @property
    def daily_cap(self) -> int:
        """At most this many messages a day (NOTIFICATION_DAILY_CAP_<CANAL>); 0 = no cap."""
        return getattr(settings, f"NOTIFICATION_DAILY_CAP_{self.canal}", 0) or 0

    def is_planned(self) -> bool:
        return not self.planning_setting or bool(getattr(settings, self.planning_setting))

    def is_configured(self) -> bool:
        """Whether the settings the channel needs to send are present."""
        return get_channel(self.canal).is_configured()


REGISTRY: tuple[ChannelSpec, ...] = (
    ChannelSpec("EMAIL", _("Email"), "notifications.channels.email.EmailChannel", "notifications_email", "email"),
    ChannelSpec(
        "WHATSAPP",
        _("WhatsApp"),
        "notifications.channels.whatsapp.WhatsAppChannel",
        "notifications_whatsapp",
        "phone",
        planning_setting="WHATSAPP_ENABLED",
    ),
    ChannelSpec(
        "SMS", _("SMS"), "notifications.channels.sms.SmsChannel", "sms_enabled", "phone", fallback_after="WHATSAPP"
    ),
)


def spec_of(canal: str) -> ChannelSpec:
    """The declaration of ``canal``; KeyError for an unknown one."""
    for spec in REGISTRY:
        if spec.canal == canal:
            return spec
    raise KeyError(canal)


@cache
def get_channel(canal: str) -> Channel:
    """The (stateless, shared) channel object for ``canal``; KeyError for an unknown one."""
    return import_string(spec_of(canal).path)()


__all__ = [
    "REGISTRY",
    "AmbiguousError",
    "Channel",
    "ChannelError",
    "ChannelSpec",
    "PermanentError",
    "TransientError",
    "get_channel",
    "spec_of",
]
