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

    def content_sid(self, log: NotificationLog, *, group: bool = False) -> str:
        return _content_sid(active_config(), log, group=group)

    def origin(self, log: NotificationLog, *, group: bool = False) -> tuple[str, str]:
        config = active_config()  # one query for both
        return _sender(config), _content_sid(config, log, group=group)


def _sender(config: WhatsAppConfig | None) -> str:
    sender = (config.phone_number_sender if config else "") or settings.TWILIO_WHATSAPP_FROM
    return sender.removeprefix("whatsapp:")


def _content_sid(config: WhatsAppConfig | None, log: NotificationLog, *, group: bool = False) -> str:
    """The approved template for the type; for a group, its list form ("<TYPE>_GROUP" in the
    configuration, or WHATSAPP_GROUP_CONTENT_SIDS), else the single-item one, whose item variable
    then lists the items (docs/notifications.md)."""
    mapped = (config.content_templates if config else None) or {}
    kind = log.type_notification
    if group:
        listed = mapped.get(f"{kind}{GROUP_SUFFIX}") or settings.WHATSAPP_GROUP_CONTENT_SIDS.get(kind, "")
        if listed:
            return listed
    return mapped.get(kind) or settings.WHATSAPP_CONTENT_SIDS.get(kind, "")


# The key of a type's list-form template in `WhatsAppConfig.content_templates`.
GROUP_SUFFIX = "_GROUP"
