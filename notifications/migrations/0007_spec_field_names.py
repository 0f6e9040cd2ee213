# The original spec's field names (issue 14). Renames only: every row keeps its values.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0006_notificationlog_erreur_code_and_more"),
    ]

    operations = [
        migrations.RenameField("notificationpreferences", "email_enabled", "notifications_email"),
        migrations.RenameField("notificationpreferences", "whatsapp_enabled", "notifications_whatsapp"),
        migrations.RenameField("whatsappconfig", "provider", "api_provider"),
        migrations.RenameField("whatsappconfig", "sender_number", "phone_number_sender"),
    ]
