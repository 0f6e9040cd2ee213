"""System checks for the notification engine: a missing or risky setting is a warning, never a crash."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.compatibility)
def check_notification_settings(app_configs=None, **kwargs) -> list[Warning]:
    warnings = []
    twilio = [settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN]
    if any(twilio) and not all(twilio):
        warnings.append(
            Warning(
                "Twilio is half configured: set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
                hint="Without both, WhatsApp and SMS rows fail permanently and fall back to email.",
                id="notifications.W001",
            )
        )
    if settings.NOTIFICATION_DRY_RUN:
        warnings.append(
            Warning("NOTIFICATION_DRY_RUN is on: notifications are logged, not sent.", id="notifications.W002")
        )
    if settings.NOTIFICATION_REDIRECT_EMAIL or settings.NOTIFICATION_REDIRECT_PHONE:
        warnings.append(
            Warning(
                "Notification redirect is on: every message goes to the test address / number, none to borrowers.",
                id="notifications.W003",
            )
        )
    slowest = max(settings.EMAIL_TIMEOUT or 0, settings.TWILIO_TIMEOUT or 0)
    if slowest >= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        warnings.append(
            Warning(
                f"A channel timeout ({slowest} s) is not below CELERY_TASK_SOFT_TIME_LIMIT "
                f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s): a slow provider would be cut off mid-send.",
                hint="Lower EMAIL_TIMEOUT / TWILIO_TIMEOUT or raise the task time limits.",
                id="notifications.W004",
            )
        )
    return warnings
