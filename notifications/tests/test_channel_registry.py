"""A channel is declared in one place (`notifications.channels.REGISTRY`): the model choices, the
preference flag, quiet hours, daily cap, configuration check, routing and fallback all read it.
SMS is the proof: a fallback channel that nothing outside its declaration names."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.utils import timezone

from assets.tests.factories import AttributionFactory, ClientFactory
from notifications import caps, channels, timeline
from notifications.channels import REGISTRY, spec_of
from notifications.lifecycle import fall_back
from notifications.models import Canal, NotificationLog, NotificationPreferences, Statut
from notifications.recipients import client_channel_conditions, client_channels

pytestmark = pytest.mark.django_db


def test_the_model_choices_are_the_registry():
    assert Canal.choices == [(spec.canal, spec.label) for spec in REGISTRY]
    # The stored values are migration-visible: they never change.
    assert Canal.values == ["EMAIL", "WHATSAPP", "SMS"]
    assert NotificationLog._meta.get_field("canal").choices == Canal.choices


def test_the_sms_channel_declares_its_flag_quiet_hours_cap_and_configuration(settings):
    sms = spec_of(Canal.SMS)
    assert NotificationPreferences._meta.get_field(sms.preference_flag).name == "sms_enabled"
    settings.QUIET_HOURS = {"SMS": "22:00-07:00"}
    settings.NOTIFICATION_DAILY_CAP_SMS = 5
    assert sms.quiet_hours == "22:00-07:00"
    assert timeline.quiet_period(timezone.now().replace(hour=23, minute=30), Canal.SMS) is not None
    assert caps.cap_for(Canal.SMS) == 5
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_SMS_FROM = "AC1", "token", "+33700000000"
    assert sms.is_configured() is True
    settings.TWILIO_SMS_FROM = ""
    assert sms.is_configured() is False
    assert sms.fallback_after == Canal.WHATSAPP


def a_whatsapp_row_that_failed(settings):
    settings.WHATSAPP_ENABLED = True
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_SMS_FROM = "AC1", "token", "+33700000000"
    client = ClientFactory()
    NotificationPreferences.objects.create(client=client, sms_enabled=True)
    attribution = AttributionFactory(client=client)
    return NotificationLog.objects.create(
        attribution=attribution,
        type_notification="CREATION",
        canal=Canal.WHATSAPP,
        statut=Statut.ECHEC_PERMANENT,
        date_scheduled=timezone.now(),
        duree_emprunt=attribution.duree,
    )


def test_sms_is_a_fallback_because_its_declaration_says_so(settings):
    log = a_whatsapp_row_that_failed(settings)
    assert client_channels(log.attribution.client, "CREATION") == [Canal.WHATSAPP, Canal.EMAIL]
    assert set(client_channel_conditions("CREATION")) == {Canal.WHATSAPP, Canal.EMAIL}
    assert fall_back(log, now=timezone.now()).canal == Canal.SMS


def test_declared_as_a_first_choice_sms_is_planned_directly_and_no_longer_a_fallback(settings, monkeypatch):
    log = a_whatsapp_row_that_failed(settings)
    first_choice = tuple(replace(spec, fallback_after="") if spec.canal == Canal.SMS else spec for spec in REGISTRY)
    monkeypatch.setattr(channels, "REGISTRY", first_choice)
    assert Canal.SMS in client_channels(log.attribution.client, "CREATION")
    assert Canal.SMS in client_channel_conditions("CREATION")
    assert fall_back(log, now=timezone.now()).canal == Canal.EMAIL
