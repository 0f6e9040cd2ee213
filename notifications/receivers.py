"""What the loan lifecycle signals set in motion. Connected in `NotificationsConfig.ready`."""

from __future__ import annotations

from django.dispatch import receiver
from django.utils.translation import gettext as _

from assets.signals import attribution_created, attribution_returned

from . import dispatcher
from .models import TypeNotification


@receiver(attribution_created, dispatch_uid="notify_creation")
def notify_creation(sender, attribution, now, **kwargs):
    dispatcher.plan([dispatcher.Planned(attribution, TypeNotification.CREATION, now)], now=now)


@receiver(attribution_returned, dispatch_uid="notify_restitution")
def notify_restitution(sender, attribution, now, **kwargs):
    dispatcher.cancel_pending_reminders(attribution, reason=_("Loan returned before this reminder was sent."))
    dispatcher.plan([dispatcher.Planned(attribution, TypeNotification.RESTITUTION, now)], now=now)
