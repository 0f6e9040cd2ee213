import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

CLASH_SHOWN = 50


def refuse_clashing_codes(apps, schema_editor):
    """Name the codes that differ only by case, instead of letting the index creation fail obscurely."""
    Materiel = apps.get_model("assets", "Materiel")
    clashing = list(
        Materiel.objects.using(schema_editor.connection.alias)
        .annotate(code_lower=Lower("code"))
        .values("code_lower")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("code_lower", flat=True)
        .order_by("code_lower")
    )
    if not clashing:
        return
    codes = (
        Materiel.objects.using(schema_editor.connection.alias)
        .annotate(code_lower=Lower("code"))
        .filter(code_lower__in=clashing[:CLASH_SHOWN])
        .order_by("code_lower", "id")
    )
    groups: dict[str, list[str]] = {}
    for materiel in codes:
        groups.setdefault(materiel.code_lower, []).append(f"{materiel.code} (id {materiel.pk})")
    lines = "\n".join(f"  - {', '.join(group)}" for group in groups.values())
    more = f"\n  … and {len(clashing) - CLASH_SHOWN} more" if len(clashing) > CLASH_SHOWN else ""
    raise RuntimeError(
        f"Material codes must be unique whatever their case, and {len(clashing)} code(s) exist in several cases:\n"
        f"{lines}{more}\n"
        "Rename one material of each group (in the admin or the materials page), then run migrate again."
    )


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0007_drop_duplicate_extension_history"),
    ]

    operations = [
        migrations.RunPython(refuse_clashing_codes, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="materiel",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("code"),
                name="materiel_code_unique_any_case",
                violation_error_message="A material already has this code (codes are compared regardless of case).",
            ),
        ),
    ]
