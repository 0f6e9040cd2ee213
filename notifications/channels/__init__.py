"""The channel registry: one dotted path per `Canal`, the class imported on first use.

Adding a channel is one module here plus its message templates, and one line below.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from .base import AmbiguousError, Channel, ChannelError, PermanentError, TransientError

CHANNELS = {
    "EMAIL": "notifications.channels.email.EmailChannel",
    "WHATSAPP": "notifications.channels.whatsapp.WhatsAppChannel",
    "SMS": "notifications.channels.sms.SmsChannel",
}


@cache
def get_channel(canal: str) -> Channel:
    """The (stateless, shared) channel object for ``canal``; KeyError for an unknown one."""
    return import_string(CHANNELS[canal])()


__all__ = ["CHANNELS", "AmbiguousError", "Channel", "ChannelError", "PermanentError", "TransientError", "get_channel"]
