"""The staff pages in a real browser: Playwright driving Debian's Chromium against the live server.

These fail (never skip) when Chromium is missing. Screenshots land in test-results/.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from assets.models import Attribution
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications.models import Canal, NotificationLog, Statut, TypeNotification

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-results"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); browser tests cannot run.")
    # Playwright's sync API keeps an event loop in this thread; Django's ORM calls from the test are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="fr-FR")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def log_in(page, live_server, username="desk", password="s3cret-pass") -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_lend_by_scanning_then_extend_and_return(page, live_server):
    from playwright.sync_api import expect

    StaffFactory(username="desk")
    MaterielFactory(code="CAM-0042", name="Canon XF405")
    ClientFactory(name="Alice Martin", email="alice@example.org", organisation="Radio Nord")

    log_in(page, live_server)
    shoot(page, "dashboard.png")
    page.click(".lend-button")

    page.fill("input[name=client]", "alice@example.org")
    page.click("button[data-hours='4']")
    expect(page.locator("#duree-preview")).to_have_class(re.compile(r"\bok\b"))
    # A barcode scanner types the code, then Enter: with the rest filled in, that submits the loan.
    page.click("input[name=materiel]")
    page.keyboard.type("CAM-0042")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/loans/\d+/$"))
    loan = Attribution.objects.get()
    assert loan.client.email == "alice@example.org" and loan.duree == "MOYEN"
    creation = page.locator("#timeline li[data-type=CREATION]")
    expect(creation).to_have_count(1)
    expect(creation).to_have_attribute("data-statut", "ENVOYEE")
    assert [m.to for m in mail.outbox if "alice@example.org" in m.to[0]]
    shoot(page, "loan.png")

    page.click("#extend-button")
    previous_due = loan.date_retour_prevue
    page.click("#extend-form button[data-days='7']")  # a week after the current due date
    page.click("main button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/")
    loan.refresh_from_db()
    assert timezone.localtime(loan.date_retour_prevue) == timezone.localtime(previous_due) + timedelta(days=7)
    assert loan.duree == "LONG"
    expect(page.locator(".message.success")).to_be_visible()

    page.click("#return-button")
    page.click("main button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/")
    expect(page.locator("#timeline li[data-type=RESTITUTION]")).to_have_count(1)
    expect(page.locator("#loan-status")).to_have_text(re.compile("Restitué|Returned"))
    loan.refresh_from_db()
    assert not loan.is_open
    shoot(page, "loan-returned.png")


def test_lend_form_shows_errors_by_the_field_and_keeps_the_input(page, live_server):
    from playwright.sync_api import expect

    StaffFactory(username="desk")
    ClientFactory(name="Bob", email="bob@example.org")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/loans/new/")
    page.fill("input[name=client]", "bob@example.org")
    page.click("button[data-days='1']")
    page.click("input[name=materiel]")
    page.keyboard.type("NOPE-1")
    expect(page.locator("#materiel-preview")).to_have_class(re.compile(r"\bbad\b"))
    page.keyboard.press("Enter")
    expect(page.locator("#field-materiel .errorlist")).to_contain_text("NOPE-1")
    expect(page.locator("input[name=client]")).to_have_value("bob@example.org")
    assert not Attribution.objects.exists()


def test_retry_a_failed_notification(page, live_server):
    from playwright.sync_api import expect

    from assets.tests.factories import AttributionFactory

    StaffFactory(username="desk")
    loan = AttributionFactory(client=ClientFactory(email="carla@example.org"))
    failed = NotificationLog.objects.create(
        attribution=loan,
        type_notification=TypeNotification.CREATION,
        canal=Canal.EMAIL,
        statut=Statut.ECHEC_PERMANENT,
        nb_tentatives=3,
        erreur_message="451 4.3.0 mailbox busy",
        date_scheduled=timezone.now() - timedelta(minutes=30),
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/notifications/?statut=ECHEC_PERMANENT")
    row = page.locator(f"#log tr[data-id='{failed.pk}']")
    expect(row).to_contain_text("451 4.3.0 mailbox busy")
    row.locator("button").click()
    expect(page.locator(".message.success")).to_be_visible()
    expect(page.locator(f"#log tr[data-id='{failed.pk}']")).to_have_count(0)
    failed.refresh_from_db()
    assert failed.statut == Statut.ENVOYEE and failed.nb_tentatives == 1
    page.goto(f"{live_server.url}/notifications/{failed.pk}/")
    expect(page.locator("#notification-status")).to_have_text(re.compile("Envoyée|Sent"))


def test_switch_the_language(page, live_server, settings):
    settings.LANGUAGE_CODE = "fr"
    from playwright.sync_api import expect

    StaffFactory(username="desk")
    log_in(page, live_server)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("h1")).to_have_text("Tableau de bord")
    page.click(".lang-switch button[value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto(f"{live_server.url}/loans/new/")
    expect(page.locator("label[for=id_materiel]")).to_have_text("Material code:")
    page.click(".lang-switch button[value=fr]")
    expect(page.locator("h1")).to_have_text("Prêter un matériel")


def test_scanning_first_names_the_material_and_moves_to_the_client(page, live_server):
    from playwright.sync_api import expect

    StaffFactory(username="desk")
    MaterielFactory(code="MIC-7", name="Shure SM7B")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/loans/new/")
    expect(page.locator("input[name=materiel]")).to_be_focused()  # autofocus lands at the next rendering update
    page.keyboard.type("MIC-7")  # the code field has the focus when the page opens
    page.keyboard.press("Enter")
    expect(page.locator("input[name=client]")).to_be_focused()
    expect(page.locator("#materiel-preview")).to_contain_text("Shure SM7B")
    assert page.url == f"{live_server.url}/loans/new/" and not Attribution.objects.exists()


def test_a_slow_earlier_preview_does_not_blank_the_later_one(page, live_server):
    """Leaving the client field asks for a preview; the due-date button asks again. When the first
    answer arrives last, the form still shows the second (the duration class of the due date)."""
    import time as clock

    from playwright.sync_api import expect

    StaffFactory(username="desk")
    ClientFactory(name="Alice Martin", email="alice@example.org")
    log_in(page, live_server)
    page.click(".lend-button")

    def slow_when_no_due(route):
        if "due=&" in route.request.url or route.request.url.endswith("due="):
            clock.sleep(1.5)  # the answer without a due date comes back after the one with it
        route.continue_()

    page.route("**/loans/preview/*", slow_when_no_due)
    page.fill("input[name=client]", "alice@example.org")
    page.click("button[data-hours='4']")

    expect(page.locator("#duree-preview")).to_have_class(re.compile(r"\bok\b"))
    page.wait_for_timeout(2500)  # the slow, earlier answer has arrived by now
    expect(page.locator("#duree-preview")).to_have_class(re.compile(r"\bok\b"))
