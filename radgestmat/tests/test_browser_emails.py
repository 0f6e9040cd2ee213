"""Every email type as a borrower sees it on a phone: the HTML part rendered by Chromium at 390 px wide.

Screenshots land in test-results/ (email-<type>-<language>.png). The test also checks what a phone shows
without scrolling sideways: nothing wider than the screen.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifications.messages import render, sample_log
from notifications.models import Audience, Canal, TypeNotification
from notifications.tests.beat import paris

from .test_browser import SCREENSHOTS, browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

NOW = paris(2026, 12, 1, 7, 30)
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def organisation(settings):
    settings.ORGANISATION_NAME = "Prêt de matériel — Radio Nord"
    settings.ORGANISATION_REPLY_TO = "pret@radionord.example"
    settings.ORGANISATION_RETURN_DESK = "Accueil, bâtiment B, 2 rue des Studios"
    settings.ORGANISATION_OPENING_HOURS = "lun.-ven. 9h-17h30"
    settings.ORGANISATION_CONTACT_PHONE = "+33 1 23 45 67 89"
    settings.ORGANISATION_CONTACT_EMAIL = "pret@radionord.example"
    settings.PUBLIC_BASE_URL = "https://pret.radionord.example"


def email_of(kind: str, language: str, audience: str = Audience.CLIENT):
    log = sample_log(kind, Canal.EMAIL, language, now=NOW)
    log.audience = audience
    log.attribution.materiel.name = "Enregistreur Zoom H6 avec bonnette anti-vent"
    if kind == TypeNotification.RETARD:
        log.niveau_escalade = 2
        log.attribution.date_retour_prevue = NOW - timedelta(days=1, hours=3)
        log.attribution.date_debut = NOW - timedelta(days=3)
    return render(log, now=NOW, language=language)


LOAN_TYPES = [kind for kind in TypeNotification.values if kind != TypeNotification.REPONSE]  # REPONSE: docs/inbound.md
CASES = [(kind, language, Audience.CLIENT) for kind in LOAN_TYPES for language in ("fr", "en")]
CASES += [(TypeNotification.RETARD, language, Audience.STAFF) for language in ("fr", "en")]


@pytest.mark.parametrize("kind, language, audience", CASES)
def test_each_email_reads_well_at_phone_width(phone, kind, language, audience):
    message = email_of(kind, language, audience)
    phone.set_content(message.html)

    name = f"email-{kind.lower()}{'-staff' if audience != Audience.CLIENT else ''}-{language}.png"
    SCREENSHOTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    # No sideways scrolling, and the item's name and due date are on the page.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    body = phone.inner_text("body")
    assert "Enregistreur Zoom H6" in body and ("2026" in body)
