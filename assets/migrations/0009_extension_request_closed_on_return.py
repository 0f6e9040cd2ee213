from django.db import migrations, models


def close_requests_of_returned_loans(apps, schema_editor):
    """Requests left waiting on loans returned before this release: nothing is left to decide."""
    ExtensionRequest = apps.get_model("assets", "ExtensionRequest")
    waiting = ExtensionRequest.objects.filter(statut="EN_ATTENTE", attribution__date_retour_effective__isnull=False)
    for request in waiting.select_related("attribution"):
        request.statut = "CLOSED"
        request.decided_at = request.attribution.date_retour_effective
        request.save(update_fields=["statut", "decided_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0008_materiel_code_unique_any_case"),
    ]

    operations = [
        migrations.AlterField(
            model_name="extensionrequest",
            name="statut",
            field=models.CharField(
                choices=[
                    ("EN_ATTENTE", "Waiting for staff"),
                    ("ACCORDEE", "Granted"),
                    ("REFUSEE", "Refused"),
                    ("CLOSED", "Closed: the item came back"),
                ],
                default="EN_ATTENTE",
                max_length=10,
                verbose_name="status",
            ),
        ),
        migrations.RunPython(close_requests_of_returned_loans, migrations.RunPython.noop),
    ]
