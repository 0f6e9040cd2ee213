"""What the loan lifecycle signals set in motion. Connected in `NotificationsConfig.ready`."""

from __future__ import annotations

from django.dispatch import receiver

from assets.signals import attribution_created, attribution_extended, attribution_returned, extension_refused

from . import lifecycle, outbox, planner
from .models import NotificationLog, TypeNotification


@receiver(attribution_created, dispatch_uid="notify_creation")
def notify_creation(sender, attribution, now, **kwargs):
    planner.plan_loan_timeline(attribution, now=now)


@receiver(attribution_extended, dispatch_uid="replan_after_extension")
def replan_after_extension(sender, attribution, now, previous_due, **kwargs):
    planner.replan_after_extension(attribution, now=now, previous_due=previous_due)


@receiver(attribution_returned, dispatch_uid="notify_restitution")
def notify_restitution(sender, attribution, now, **kwargs):
    lifecycle.cancel_pending_reminders(attribution, code="REMINDER_AFTER_RETURN")
    lifecycle.cancel(
        NotificationLog.objects.filter(attribution=attribution, type_notification=TypeNotification.RETARD),
        code="ALERT_AFTER_RETURN",
    )
    lifecycle.cancel(
        NotificationLog.objects.filter(attribution=attribution, type_notification=TypeNotification.PROLONGATION),
        code="NOTICE_AFTER_RETURN",
    )
    outbox.plan([outbox.Planned(attribution, TypeNotification.RESTITUTION, now)], now=now)


@receiver(extension_refused, dispatch_uid="notify_extension_refused")
def notify_extension_refused(sender, attribution, now, **kwargs):
    # One row per loan and channel: a second refusal re-arms it (the message reads the latest refusal).
    outbox.rearm([outbox.Planned(attribution, TypeNotification.PROLONGATION_REFUSEE, now)], now=now)
