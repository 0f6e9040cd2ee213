"""WhatsApp through Twilio: an approved Content Template when one is mapped to the type, else a plain body (sandbox)."""

from __future__ import annotations

from django.conf import settings

from notifications.models import NotificationLog, WhatsAppConfig

from .twilio_api import TwilioChannel


def active_config() -> WhatsAppConfig | None:
    return WhatsAppConfig.objects.filter(is_active=True).first()


class WhatsAppChannel(TwilioChannel):
    canal = "WHATSAPP"
    address_prefix = "whatsapp:"

    def sender(self) -> str:
        return _sender(active_config())

    def content_sid(self, log: NotificationLog) -> str:
        return _content_sid(active_config(), log)

    def origin(self, log: NotificationLog) -> tuple[str, str]:
        config = active_config()  # one query for both
        return _sender(config), _content_sid(config, log)


def _sender(config: WhatsAppConfig | None) -> str:
    sender = (config.phone_number_sender if config else "") or settings.TWILIO_WHATSAPP_FROM
    return sender.removeprefix("whatsapp:")


def _content_sid(config: WhatsAppConfig | None, log: NotificationLog) -> str:
    mapped = (config.content_templates if config else None) or {}
    return mapped.get(log.type_notification) or settings.WHATSAPP_CONTENT_SIDS.get(log.type_notification, "")
