# The spec writes the provider as TWILIO: existing configurations move from "twilio" to it.

from django.db import migrations


def to_spec_value(apps, schema_editor):
    apps.get_model("notifications", "WhatsAppConfig").objects.filter(api_provider="twilio").update(
        api_provider="TWILIO"
    )


def to_previous_value(apps, schema_editor):
    apps.get_model("notifications", "WhatsAppConfig").objects.filter(api_provider="TWILIO").update(
        api_provider="twilio"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0008_whatsapp_opt_in"),
    ]

    operations = [migrations.RunPython(to_spec_value, to_previous_value)]
