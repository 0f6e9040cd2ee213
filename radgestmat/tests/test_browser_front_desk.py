"""The front desk in a real browser, in French and English, at desktop and phone width (390 px):
scan to return, a basket lent in one go, and the warning before lending to someone no message reaches.

Screenshots land in test-results/front-desk-*.png.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from assets.models import Attribution
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory, StaffFactory
from radgestmat.tests.test_browser import browser, log_in, shoot  # noqa: F401  # the browser fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": {"width": 1360, "height": 900}, "phone": {"width": 390, "height": 844}}
LOCALES = {"fr": "fr-FR", "en": "en-US"}
COMBINATIONS = [("fr", "desktop"), ("en", "desktop"), ("fr", "phone"), ("en", "phone")]


@pytest.fixture(params=COMBINATIONS, ids=lambda c: f"{c[0]}-{c[1]}")
def desk(request, browser, live_server):  # noqa: F811
    language, width = request.param
    context = browser.new_context(viewport=VIEWPORTS[width], locale=LOCALES[language])
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    StaffFactory(username="desk")
    log_in(tab, live_server)
    yield tab, language, width
    context.close()


def local_input(delta: timedelta) -> str:
    return timezone.localtime(timezone.now() + delta).strftime("%Y-%m-%dT%H:%M")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_scan_to_return_records_at_once_and_says_how_late(desk, live_server):
    from playwright.sync_api import expect

    page, language, width = desk
    now = timezone.now()
    loan = AttributionFactory(
        materiel__code="CAM-0042",
        materiel__name="Canon XF405",
        client__name="Alice Martin",
        date_debut=now - timedelta(hours=6),
        date_retour_prevue=now - timedelta(hours=3),
    )
    other = AttributionFactory(materiel__code="TRI-0007", date_debut=now - timedelta(hours=1))
    page.goto(f"{live_server.url}/loans/?sort=material")
    shoot(page, f"front-desk-loan-list-{language}-{width}.png")
    page.click("button[data-return='TRI-0007']")  # return from the row: back on the same list
    page.wait_for_url(re.compile(r"/loans/\?sort=material$"))
    expect(page.locator("button[data-return='TRI-0007']")).to_have_count(0)
    other.refresh_from_db()
    assert not other.is_open
    page.click("#scan-return-link")
    page.wait_for_url(re.compile(r"/loans/scan-return/$"))
    # A USB scanner is a keyboard: it types the code (any case), then Enter, into the field that has the focus
    # when the page opens. Chromium applies autofocus at its next rendering update, which under load can come
    # after the load event: wait for it as someone at the desk waits for the cursor.
    expect(page.locator("input[name=code]")).to_be_focused()
    page.keyboard.type("cam-0042")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?last=\d+$"))
    expect(page.locator("#returned")).to_contain_text("Alice Martin")
    expect(page.locator("#returned")).to_have_class(re.compile(r"\bis-late\b"))
    expect(page.locator("#returned-lateness")).to_contain_text("3 h" if language == "en" else "3 h")
    expect(page.locator("#recent-returns")).to_contain_text("CAM-0042")
    expect(page.locator("input[name=code]")).to_be_focused()
    loan.refresh_from_db()
    assert not loan.is_open
    assert no_horizontal_scroll(page)
    shoot(page, f"front-desk-scan-return-{language}-{width}.png")

    page.keyboard.type("CAM-0042")  # the same code again: it is back already
    page.keyboard.press("Enter")
    expect(page.locator("#field-code .errorlist")).to_contain_text("CAM-0042")
    shoot(page, f"front-desk-scan-return-error-{language}-{width}.png")


def test_a_basket_lends_several_items_in_one_go(desk, live_server):
    from playwright.sync_api import expect

    page, language, width = desk
    MaterielFactory(code="CAM-1", name="Caméra")
    MaterielFactory(code="TRI-2", name="Trépied")
    busy = AttributionFactory(materiel__code="MIC-3", client__name="Bob Busy")
    carla = ClientFactory(name="Carla Diaz", email="carla@example.org")

    page.goto(f"{live_server.url}/loans/new/")
    page.click("#basket-link")
    page.wait_for_url(re.compile(r"/loans/basket/$"))
    for code in ("CAM-1", "tri-2", "MIC-3"):
        page.fill("input[name=code]", code)
        page.press("input[name=code]", "Enter")
        page.wait_for_load_state()
    expect(page.locator("#basket-items li[data-code]")).to_have_count(2)
    expect(page.locator("#field-code .errorlist")).to_contain_text("Bob Busy")
    expect(page.locator("#busy-loan a")).to_have_attribute("href", f"/loans/{busy.pk}/return/")
    page.fill("input[name=client]", "carla@example.org")
    page.fill("input[name=date_retour_prevue]", local_input(timedelta(days=2)))
    assert no_horizontal_scroll(page)
    shoot(page, f"front-desk-basket-{language}-{width}.png")
    page.click("#basket-lend")
    page.wait_for_url(re.compile(rf"/clients/{carla.pk}/$"))
    expect(page.locator(".message.success")).to_contain_text("CAM-1, TRI-2")
    loans = Attribution.objects.filter(client=carla)
    assert sorted(loan.materiel.code for loan in loans) == ["CAM-1", "TRI-2"]
    assert len({loan.date_retour_prevue for loan in loans}) == 1
    shoot(page, f"front-desk-basket-done-{language}-{width}.png")


def test_lending_to_someone_no_message_reaches_warns_first(desk, live_server, settings):
    from playwright.sync_api import expect

    settings.WHATSAPP_ENABLED = False
    settings.LEND_UNREACHABLE = "warn"
    page, language, width = desk
    MaterielFactory(code="CAM-7")
    phone_only = ClientFactory(name="Paul Phone", email="", phone="+33612345678")

    page.goto(f"{live_server.url}/loans/new/")
    page.fill("input[name=materiel]", "CAM-7")
    page.fill("input[name=client]", f"Paul Phone · #{phone_only.pk}")
    page.fill("input[name=date_retour_prevue]", local_input(timedelta(hours=5)))
    page.locator("input[name=client]").dispatch_event("change")
    expect(page.locator("#client-preview")).to_have_class(re.compile(r"\bbad\b"))
    page.click("main button[type=submit].primary")
    expect(page.locator("#lend-warnings")).to_contain_text(
        "No message can reach Paul Phone" if language == "en" else "Aucun message ne peut joindre Paul Phone"
    )
    expect(page.locator("#reach td[data-canal=WHATSAPP]").first).to_contain_text(
        "WhatsApp not configured" if language == "en" else "WhatsApp non configuré"
    )
    assert not Attribution.objects.exists()
    assert no_horizontal_scroll(page)
    shoot(page, f"front-desk-unreachable-{language}-{width}.png")
    page.click("#lend-anyway")
    page.wait_for_url(re.compile(r"/loans/\d+/$"))
    assert Attribution.objects.get().client == phone_only

    page.goto(f"{live_server.url}/")
    expect(page.locator("#card-unreachable .n")).to_have_text("1")
    page.click("#card-unreachable")
    expect(page.locator("#loans tbody tr")).to_have_count(1)
    page.goto(f"{live_server.url}/clients/{phone_only.pk}/")
    expect(page.locator("#reach")).to_be_visible()
    shoot(page, f"front-desk-client-reach-{language}-{width}.png")
