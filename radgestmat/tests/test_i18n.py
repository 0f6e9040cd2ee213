"""The UI is French by default, English on request; model names and service errors follow the language."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from assets import services
from assets.models import Attribution
from assets.tests.factories import AttributionFactory, ClientFactory


@pytest.fixture
def shipped_default(settings):
    """The deployment default (`LANGUAGE_CODE` unset): French. The test run itself uses English."""
    settings.LANGUAGE_CODE = "fr"


def test_pages_are_french_by_default(staff_client, shipped_default):
    html = staff_client.get(reverse("home")).content.decode()
    assert '<html lang="fr">' in html
    assert "Tableau de bord" in html and "Prêter un matériel" in html


def test_the_language_switch_turns_pages_english(staff_client, shipped_default):
    response = staff_client.post(reverse("set_language"), {"language": "en", "next": reverse("loan_list")})
    assert response["Location"] == reverse("loan_list")
    html = staff_client.get(reverse("loan_list")).content.decode()
    assert '<html lang="en">' in html and "Lend a material" in html


def test_model_names_and_choices_are_translated():
    with translation.override("fr"):
        assert str(Attribution._meta.verbose_name) == "prêt"
        assert str(Attribution.Statut.RESTITUEE.label) == "Restitué"
    with translation.override("en"):
        assert str(Attribution._meta.verbose_name) == "loan"


def test_service_errors_are_translated(db):
    loan = AttributionFactory(materiel__code="CAM-1", client__name="Zoé")
    with translation.override("fr"), pytest.raises(ValidationError) as caught:
        services.lend(
            materiel=loan.materiel, client=ClientFactory(), due=timezone.now() + timedelta(hours=2), now=timezone.now()
        )
    [message] = caught.value.message_dict["materiel"]
    assert message.startswith("CAM-1 est déjà sorti chez Zoé (à rendre le ")


def test_dates_follow_the_language_and_the_local_time_zone(staff_client, settings):
    loan = AttributionFactory(date_debut=datetime(2026, 7, 14, 8, 30, tzinfo=UTC))
    url = reverse("loan_detail", args=[loan.pk])
    settings.LANGUAGE_CODE = "fr"
    assert "14 juillet 2026 à 10:30" in staff_client.get(url).content.decode()  # Paris is UTC+2 in July
    settings.LANGUAGE_CODE = "en"
    assert "14 July 2026, 10:30" in staff_client.get(url).content.decode()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_one_date_pattern_per_language_on_the_lists(staff_client, settings, language):
    """Day month year and a 24-hour clock everywhere: no 07/14/2026, no 14/07/2026 next to "14 juillet", no p.m."""

    settings.LANGUAGE_CODE = language
    AttributionFactory(date_debut=datetime(2026, 7, 14, 12, 30, tzinfo=UTC))
    for url in (reverse("loan_list") + "?state=all", reverse("home")):
        html = staff_client.get(url).content.decode()
        assert not re.search(r"\d{1,2}/\d{1,2}/\d{4}", html), url
        assert not re.search(r"\b[ap]\.m\.", html), url
    html = staff_client.get(reverse("loan_list") + "?state=all").content.decode()
    assert ("14 juil. 2026 à 14:30" if language == "fr" else "14 Jul 2026, 14:30") in html


def test_the_french_catalog_is_complete_and_compiled(settings):
    """Every string of locale/fr/…/django.po is translated, and the committed .mo holds them all."""
    import gettext

    folder = settings.BASE_DIR / "locale" / "fr" / "LC_MESSAGES"
    po = (folder / "django.po").read_text(encoding="utf-8")
    entries = [e for e in po.split("\n\n") if re.search(r"^msgid ", e, re.M) and "Project-Id-Version" not in e]
    untranslated = [e for e in entries if re.search(r'^msgstr(\[\d\])? ""$(?!\n")', e, re.M)]
    assert untranslated == []
    with open(folder / "django.mo", "rb") as mo:
        catalog = gettext.GNUTranslations(mo)._catalog
    singular_ids = {key if isinstance(key, str) else key[0] for key in catalog if key}
    assert len(singular_ids) == len(entries)
