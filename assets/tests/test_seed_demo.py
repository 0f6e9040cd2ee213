import pytest
from django.core.management import call_command

from assets.models import Attribution, Client, Materiel


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_the_login(capsys, django_user_model):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "Log in as “demo”" in out
    assert django_user_model.objects.filter(username="demo", is_staff=True).count() == 1
    assert Materiel.objects.count() == 6 and Client.objects.count() == 3
    assert sorted(Attribution.objects.values_list("duree", flat=True)) == ["COURT", "LONG", "MOYEN"]
