"""Material codes are unique whatever their case, and a lower-case scan finds the right item."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from assets.forms import MaterielForm, find_materiel
from assets.models import Materiel
from assets.tests.factories import AttributionFactory, MaterielFactory


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.mark.django_db
def test_the_database_refuses_a_code_that_differs_only_by_case():
    MaterielFactory(code="CAM-001")
    with pytest.raises(IntegrityError), transaction.atomic():
        Materiel.objects.create(code="cam-001", name="Other")


@pytest.mark.django_db
def test_the_material_form_says_the_code_is_taken_whatever_its_case():
    MaterielFactory(code="CAM-001")
    form = MaterielForm({"code": "cam-001", "name": "Other", "state": "available"})
    assert not form.is_valid()
    assert "regardless of case" in str(form.errors)


@pytest.mark.django_db
def test_lookups_ignore_the_case(staff_client):
    wanted = MaterielFactory(code="CAM-001", name="Canon")
    MaterielFactory(code="CAM-0011", name="Decoy")
    assert find_materiel("cam-001") == wanted
    preview = staff_client.get(reverse("lend_preview"), {"code": "cam-001"}).json()
    assert preview["materiel"]["code"] == "CAM-001"
    loan = AttributionFactory(materiel=wanted)
    AttributionFactory(materiel=Materiel.objects.get(code="CAM-0011"))
    page = staff_client.get(reverse("loan_list"), {"q": "cam-001"}).context["page"]
    assert [row.pk for row in page] == [loan.pk]


BEFORE = [("assets", "0007_drop_duplicate_extension_history")]
AFTER = [("assets", "0008_materiel_code_unique_any_case")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_names_the_clashing_codes_instead_of_failing_obscurely():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("assets", "Materiel")
    old.objects.create(code="CAM-001", name="a")
    old.objects.create(code="cam-001", name="b")
    old.objects.create(code="TRI-9", name="c")
    try:
        executor = MigrationExecutor(connection)
        with pytest.raises(RuntimeError) as raised:
            executor.migrate(AFTER)
        message = str(raised.value)
        assert "CAM-001 (id" in message and "cam-001 (id" in message and "TRI-9" not in message
        assert "Rename one material of each group" in message
    finally:
        old.objects.filter(code="cam-001").delete()
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert Materiel.objects.count() == 2
