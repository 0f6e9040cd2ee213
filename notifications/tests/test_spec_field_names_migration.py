"""The spec's field names arrive by renaming columns: preferences and the WhatsApp sender survive the upgrade."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("notifications", "0006_notificationlog_erreur_code_and_more"), ("assets", "0002_attribution_loans_by_start")]
AFTER = [("notifications", "0007_spec_field_names")]


@pytest.mark.django_db(transaction=True)
def test_the_rename_keeps_every_preference_and_the_sender():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    client = old.get_model("assets", "Client").objects.create(name="Ada", email="ada@example.org")
    old.get_model("notifications", "NotificationPreferences").objects.create(
        client=client, email_enabled=False, whatsapp_enabled=True, phone_number="+33612345678"
    )
    old.get_model("notifications", "WhatsAppConfig").objects.create(sender_number="+14155238886", provider="twilio")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from notifications.models import NotificationPreferences, WhatsAppConfig

    prefs = NotificationPreferences.objects.get(client__name="Ada")
    assert (prefs.notifications_email, prefs.notifications_whatsapp, prefs.phone_number) == (
        False,
        True,
        "+33612345678",
    )
    config = WhatsAppConfig.objects.get()
    assert config.phone_number_sender == "+14155238886"
    assert (config.api_provider, config.get_api_provider_display()) == ("TWILIO", "Twilio")
