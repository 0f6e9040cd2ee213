"""Who hears about a loan, on which channels: preferences and routing.

`client_channels` decides it for one client in Python; `client_channel_conditions` is the
same rule in SQL, for the planning jobs that load only the loans lacking a row.
Staff audiences (the lender, the manager) get email only (`audience_address`).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from assets.models import Attribution, Client

from .models import Audience, Canal, NotificationPreferences, TypeNotification

# Which preference flag switches off which reminder. Overdue alerts cannot be switched off.
REMINDER_FLAGS = {
    TypeNotification.RAPPEL_2H: "rappel_2h_avant",
    TypeNotification.RAPPEL_J_MOINS_2: "rappel_j_moins_2",
    TypeNotification.RAPPEL_J_MOINS_1: "rappel_j_moins_1",
    TypeNotification.RAPPEL_FINAL: "rappel_final",
}


def preferences_of(client: Client) -> NotificationPreferences:
    """The client's preferences, or the defaults when they have none (never saved)."""
    try:
        return client.notification_preferences
    except NotificationPreferences.DoesNotExist:
        return NotificationPreferences(client=client)


def phone_of(client: Client, prefs: NotificationPreferences) -> str:
    return prefs.phone_number or client.phone


def wants(prefs: NotificationPreferences, type_notification: str) -> bool:
    """Whether this person still wants this type of notification at all."""
    flag = REMINDER_FLAGS.get(type_notification)
    return flag is None or getattr(prefs, flag)


def client_channels(client: Client, type_notification: str) -> list[str]:
    """The channels a client is told on for one type, from their preferences and contacts.

    SMS is not a first choice: it is the fallback when WhatsApp fails (see `fallback_channels`).
    An overdue alert goes out even to a client who switched every channel off: by
    email if we have one, else WhatsApp.
    """
    prefs = preferences_of(client)
    if not wants(prefs, type_notification):
        return []
    phone = phone_of(client, prefs)
    channels = []
    if prefs.whatsapp_enabled and phone and settings.WHATSAPP_ENABLED:
        channels.append(Canal.WHATSAPP)
    if prefs.email_enabled and client.email:
        channels.append(Canal.EMAIL)
    if not channels and type_notification == TypeNotification.RETARD:
        if client.email:
            channels.append(Canal.EMAIL)
        elif phone and settings.WHATSAPP_ENABLED:
            channels.append(Canal.WHATSAPP)
    return channels


def client_channel_conditions(type_notification: str) -> dict[str, Q]:
    """`client_channels` in SQL: per channel, the condition on an `Attribution` under which its client gets it.

    The checks use these to load only loans that lack a row; keep them in step with
    `client_channels` (``test_check_selection`` compares the two on every combination).
    """
    prefs = "client__notification_preferences"
    no_prefs = Q(**{f"{prefs}__isnull": True})

    def switched_on(flag: str) -> Q:
        return no_prefs | Q(**{f"{prefs}__{flag}": True})

    phone = Q(**{f"{prefs}__phone_number__gt": ""}) | Q(client__phone__gt="")
    no_phone = (no_prefs | Q(**{f"{prefs}__phone_number": ""})) & Q(client__phone="")
    email = Q(client__email__gt="")
    whatsapp_on = switched_on("whatsapp_enabled") & phone if settings.WHATSAPP_ENABLED else NEVER
    whatsapp_off = (Q(**{f"{prefs}__whatsapp_enabled": False}) | no_phone) if settings.WHATSAPP_ENABLED else ~NEVER
    wanted = switched_on(REMINDER_FLAGS[type_notification]) if type_notification in REMINDER_FLAGS else ~NEVER
    if type_notification != TypeNotification.RETARD:
        return {Canal.WHATSAPP: wanted & whatsapp_on, Canal.EMAIL: wanted & switched_on("email_enabled") & email}
    # An overdue alert falls back to email, else WhatsApp, when the client switched both off.
    return {
        Canal.WHATSAPP: (whatsapp_on | (phone & Q(client__email=""))) if settings.WHATSAPP_ENABLED else NEVER,
        Canal.EMAIL: email & (switched_on("email_enabled") | whatsapp_off),
    }


# A condition no row meets (Django turns it into an empty result or drops it from an OR).
NEVER = Q(pk__in=[])


def audience_condition(audience: str) -> Q:
    """`audience_address` in SQL: when a staff audience of a loan gets its (email) overdue alert."""
    if audience == Audience.STAFF:
        return Q(created_by__email__gt="")
    if audience == Audience.MANAGER:
        return ~NEVER if settings.OVERDUE_MANAGER_EMAIL else NEVER
    raise ValueError(audience)


def audience_address(attribution: Attribution, audience: str) -> str:
    """Email address of a staff audience (the lender or the manager); empty when there is none."""
    if audience == Audience.STAFF:
        return attribution.created_by.email if attribution.created_by else ""
    if audience == Audience.MANAGER:
        return settings.OVERDUE_MANAGER_EMAIL
    return ""


def channels_for(attribution: Attribution, type_notification: str, audience: str) -> list[str]:
    """The channels one planned notification goes out on, for any audience."""
    if audience == Audience.CLIENT:
        return client_channels(attribution.client, type_notification)
    return [Canal.EMAIL] if audience_address(attribution, audience) else []
