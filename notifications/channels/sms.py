"""SMS through Twilio: the fallback when WhatsApp cannot reach someone."""

from __future__ import annotations

from django.conf import settings

from .twilio_api import TwilioChannel


class SmsChannel(TwilioChannel):
    canal = "SMS"

    def sender(self) -> str:
        return settings.TWILIO_SMS_FROM
