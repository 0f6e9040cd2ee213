"""Send one real test message through a configured channel: ``--email ADDRESS | --whatsapp NUMBER | --sms NUMBER``."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications.channels import ChannelError, get_channel
from notifications.messages import render, sample_log
from notifications.models import Canal, TypeNotification
from radgestmat.masking import mask_address


class Command(BaseCommand):
    help = (
        "Send one test message (a sample loan confirmation) through the configured email, WhatsApp or SMS "
        "channel and print the provider's id or the error. Exits non-zero on failure. Honours NOTIFICATION_DRY_RUN."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--email", metavar="ADDRESS")
        target.add_argument("--whatsapp", metavar="NUMBER")
        target.add_argument("--sms", metavar="NUMBER")
        parser.add_argument("--language", choices=[code for code, _name in settings.LANGUAGES], default="fr")
        parser.add_argument("--type", dest="type_notification", choices=TypeNotification.values, default="CREATION")

    def handle(
        self, *args, email=None, whatsapp=None, sms=None, language="fr", type_notification="CREATION", **options
    ):
        if email is not None:
            canal, raw = Canal.EMAIL, email
        elif whatsapp is not None:
            canal, raw = Canal.WHATSAPP, whatsapp
        else:
            canal, raw = Canal.SMS, sms
        channel = get_channel(canal)
        now = timezone.now()
        try:
            to = channel.validate(raw)
            log = sample_log(type_notification, canal, language, now=now)
            message = render(log, now=now, language=language)
            if canal == Canal.EMAIL:
                message = replace(message, subject=f"[Test] {message.subject}")
            if settings.NOTIFICATION_DRY_RUN:
                self.stdout.write(f"Dry run (NOTIFICATION_DRY_RUN=1): nothing sent. {canal} to {mask_address(to)}:")
                self.stdout.write(message.subject or message.body)
                return
            provider_id = channel.send(log, message, to)
        except ChannelError as error:
            kind = "permanent" if error.permanent else "transient"
            raise CommandError(f"{canal} to {raw} failed ({kind}): {error}")
        self.stdout.write(self.style.SUCCESS(f"Sent {canal} to {to}: provider id {provider_id}"))
