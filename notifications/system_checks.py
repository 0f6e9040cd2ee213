"""System checks: a missing or risky setting is a warning an operator sees before borrowers notice, never a crash."""

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
    from .models import content_sid_problems

    for problem in content_sid_problems(settings.WHATSAPP_CONTENT_SIDS):
        warnings.append(Warning(f"WHATSAPP_CONTENT_SIDS: {problem}", id="notifications.W005"))
    return warnings


@register(Tags.compatibility, "notifications")
def check_email_settings(app_configs=None, **kwargs):
    errors = []
    backend = settings.EMAIL_BACKEND
    if not settings.DEBUG and backend.endswith("filebased.EmailBackend"):
        errors.append(
            Warning(
                "EMAIL_HOST is not set: emails are written to files and never reach borrowers.",
                hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS).",
                id="radgestmat.W001",
            )
        )
    if settings.EMAIL_HOST and bool(settings.EMAIL_HOST_USER) != bool(settings.EMAIL_HOST_PASSWORD):
        errors.append(
            Warning(
                "Only one of EMAIL_HOST_USER and EMAIL_HOST_PASSWORD is set.",
                hint="Set both to log in to the SMTP server, or neither.",
                id="radgestmat.W002",
            )
        )
    if not settings.DEBUG and settings.DEFAULT_FROM_EMAIL.endswith("@localhost"):
        errors.append(
            Warning(
                "DEFAULT_FROM_EMAIL is a localhost address: mail servers will reject or junk it.",
                hint="Set DEFAULT_FROM_EMAIL to an address of your domain.",
                id="radgestmat.W003",
            )
        )
    if not settings.DEBUG and not settings.ADMINS:
        errors.append(
            Warning(
                "ADMIN_EMAILS is empty: failure alerts and server errors are emailed to nobody.",
                id="radgestmat.W004",
            )
        )
    return errors


@register(Tags.compatibility, "notifications")
def check_twilio_senders(app_configs=None, **kwargs):
    credentials = bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)
    senders = [name for name in ("TWILIO_WHATSAPP_FROM", "TWILIO_SMS_FROM") if getattr(settings, name)]
    errors = []
    if credentials and not senders:
        errors.append(
            Warning(
                "Twilio credentials are set but no sender: WhatsApp and SMS are off.",
                hint="Set TWILIO_WHATSAPP_FROM and/or TWILIO_SMS_FROM.",
                id="radgestmat.W010",
            )
        )
    if senders and not credentials:
        errors.append(
            Warning(
                f"{' and '.join(senders)} set but the Twilio credentials are not: nothing can be sent through Twilio.",
                hint="Set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
                id="radgestmat.W011",
            )
        )
    if settings.WHATSAPP_ENABLED and not settings.DEBUG and not settings.PUBLIC_BASE_URL.startswith("https://"):
        errors.append(
            Warning(
                "PUBLIC_BASE_URL is not an https:// URL: Twilio cannot deliver status callbacks safely.",
                hint="Set PUBLIC_BASE_URL to the public https address of this site.",
                id="radgestmat.W012",
            )
        )
    return errors


@register("celery")
def check_single_beat(app_configs=None, **kwargs):
    """Warns when the broker's Redis has heard from more than one beat in the last minute."""
    from radgestmat.beat_registry import live_beat_instances

    try:
        beats = live_beat_instances()
    except Exception:  # noqa: BLE001
        return []  # Redis down is /healthz's business; `check` must work without it.
    if len(beats) > 1:
        return [
            Warning(
                f"{len(beats)} celery beat processes seem to be running ({', '.join(beats)}); run exactly one.",
                hint="Stop all but one beat (systemctl stop radgestmat-beat on the other machines).",
                id="radgestmat.W020",
            )
        ]
    return []


@register("celery")
def check_redis_eviction_policy(app_configs=None, **kwargs):
    """Warns when the broker's Redis may evict keys: an evicted task message is a notification sent late."""
    from radgestmat.celery import broker_connection

    try:
        with broker_connection() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
            policy = conn.default_channel.client.config_get("maxmemory-policy").get("maxmemory-policy")
    except Exception:  # noqa: BLE001
        return []  # Redis down, or CONFIG forbidden by a managed Redis: nothing to say here
    if policy and policy != "noeviction":
        return [
            Warning(
                f"The broker's Redis has maxmemory-policy {policy}: under memory pressure it may drop queued tasks.",
                hint="Set maxmemory-policy noeviction in redis.conf (see docs/operations.md, Production).",
                id="radgestmat.W021",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_flower_auth(app_configs=None, **kwargs):
    """Warns when Flower (same environment file on every machine) would be open or weakly protected.

    FLOWER_BASIC_AUTH is read from the environment, never made a Django setting: settings are what
    a worker shows in Flower's "Config" tab and what error reports list.
    """
    import os

    from radgestmat.flower_auth import refusal

    reason = refusal(os.environ)
    if reason:
        return [
            Warning(
                reason.removeprefix("flower: "),
                hint="Set FLOWER_BASIC_AUTH=user:password with a long random password "
                '(python3 -c "import secrets; print(secrets.token_urlsafe(24))"); deploy/flower.py will not start without it.',
                id="radgestmat.W030",
            )
        ]
    return []
