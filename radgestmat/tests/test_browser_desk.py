"""The front desk in a real browser: the activity feed, the loan history, both languages, a phone's width.

Screenshots land in test-results/ (desk-*.png); they are looked at, not compared.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from assets import services
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory, StaffFactory
from notifications.models import Canal, CodeErreur, NotificationLog, Statut, TypeNotification
from radgestmat.tests.test_browser import browser, log_in, shoot  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def desk(transactional_db):
    user = StaffFactory(username="desk")
    user.user_permissions.add(Permission.objects.get(codename="change_notificationlog"))
    return user


def open_page(browser, live_server, *, viewport=None, locale="fr-FR"):  # noqa: F811
    context = browser.new_context(viewport=viewport or {"width": 1360, "height": 900}, locale=locale)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    return context, tab


def a_day_at_the_desk(desk):
    """A loan extended once with a note, a sent confirmation, a failure no retry can fix, a planned reminder."""
    now = timezone.now()
    client = ClientFactory(name="Élodie Marchand", email="elodie@example.org", organisation="Radio Campus")
    loan = services.lend(
        materiel=MaterielFactory(code="CAM-0042", name="Canon XF405"),
        client=client,
        due=now + timedelta(days=2),
        now=now - timedelta(hours=2),
        by=desk,
    )
    services.extend(loan, new_due=now + timedelta(days=3), now=now - timedelta(hours=1), by=desk)
    services.add_note(loan, text="Sacoche rendue à part.", now=now - timedelta(minutes=30), by=desk)
    NotificationLog.objects.filter(attribution=loan).delete()  # the signals' rows: replaced by known ones
    make = NotificationLog.objects.create
    sent = make(
        attribution=loan, type_notification=TypeNotification.CREATION, canal=Canal.EMAIL, statut=Statut.ENVOYEE,
        date_scheduled=now - timedelta(hours=2), date_envoi=now - timedelta(hours=2), nb_tentatives=1,
        destinataire="elodie@example.org",
    )  # fmt: skip
    bad = make(
        attribution=loan, type_notification=TypeNotification.CREATION, canal=Canal.WHATSAPP,
        statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.INVALID_RECIPIENT, nb_tentatives=1,
        erreur_message="Twilio HTTP 400, error 21211: The 'To' number +33600000000 is not a valid phone number.",
        date_scheduled=now - timedelta(minutes=90),
    )  # fmt: skip
    planned = make(
        attribution=loan, type_notification=TypeNotification.RAPPEL_J_MOINS_1, canal=Canal.EMAIL,
        statut=Statut.EN_ATTENTE, date_scheduled=now + timedelta(days=2),
    )  # fmt: skip
    for i in range(3):
        other = AttributionFactory(
            client=ClientFactory(name=f"Client {i}"), date_debut=now - timedelta(days=3),
            date_retour_prevue=now - timedelta(hours=5 * (i + 1)),
        )  # fmt: skip
        make(
            attribution=other, type_notification=TypeNotification.RETARD, canal=Canal.EMAIL, niveau_escalade=1,
            statut=Statut.ENVOYEE, date_scheduled=now - timedelta(hours=i + 3), date_envoi=now - timedelta(hours=i + 3),
        )  # fmt: skip
    return loan, sent, bad, planned


def test_the_activity_feed_cancel_with_confirmation_and_the_message_of_a_failure(browser, live_server, desk):  # noqa: F811
    from playwright.sync_api import expect

    loan, sent, bad, planned = a_day_at_the_desk(desk)
    context, page = open_page(browser, live_server)
    log_in(page, live_server)

    page.goto(f"{live_server.url}/notifications/")
    rows = page.locator("#log tbody tr")
    expect(rows.first).to_have_attribute("data-id", str(bad.pk))  # newest activity first
    expect(page.locator(f"#log tr[data-id='{planned.pk}']")).to_have_count(0)  # planned: its own tab
    expect(page.locator("#log-tabs a[data-tab=planned] .count")).to_have_text("1")
    expect(page.locator("#log-tabs a[data-tab=failed] .count")).to_have_text("1")
    expect(page.locator(f"#log tr[data-id='{bad.pk}'] [data-action=edit-client]")).to_have_text("Modifier le client")
    shoot(page, "desk-activity-fr.png")

    page.click("#log-tabs a[data-tab=planned]")
    expect(page.locator("#log tbody tr")).to_have_count(1)
    page.check(f"#log tr[data-id='{planned.pk}'] input[name=ids]")
    expect(page.locator("#cancel-selected")).to_have_text("Annuler les notifications")
    page.click("#cancel-selected")
    expect(page.locator("#cancel-confirm")).to_contain_text("ne seront pas envoyés")
    planned.refresh_from_db()
    assert planned.statut == Statut.EN_ATTENTE  # not before the confirmation
    shoot(page, "desk-cancel-confirm-fr.png")
    page.click("#confirm-cancel")
    expect(page.locator(".message.success")).to_contain_text("1 notification annulée")
    planned.refresh_from_db()
    assert (planned.statut, planned.reason_code) == (Statut.ANNULEE, "CANCELLED_BY")

    page.goto(f"{live_server.url}/notifications/{bad.pk}/")
    expect(page.locator("#edit-client")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("21211")
    expect(page.locator("#message-body")).to_contain_text("CAM-0042")
    shoot(page, "desk-notification-detail-fr.png")
    page.click("#edit-client")
    page.wait_for_url(re.compile(rf"/clients/{loan.client_id}/edit/$"))
    context.close()


def test_the_loan_page_in_both_languages_with_its_history(browser, live_server, desk, settings):  # noqa: F811
    from playwright.sync_api import expect

    settings.LANGUAGE_CODE = "fr"
    loan, *_ = a_day_at_the_desk(desk)
    context, page = open_page(browser, live_server)
    log_in(page, live_server)

    page.goto(f"{live_server.url}/loans/{loan.pk}/")
    expect(page.locator("#extension-count")).to_have_text("1 prolongation sur 3 autorisées")
    expect(page.locator("#history li")).to_have_count(3)
    expect(page.locator("#history li[data-kind=NOTE]")).to_contain_text("Sacoche rendue à part.")
    html = page.inner_text("body")
    assert not re.search(r"\b(Sent|Failed|Waiting|Cancelled|Due date changed|extension)\b", html)
    shoot(page, "desk-loan-fr.png")

    page.click(".lang-switch button[value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#extension-count")).to_have_text("1 extension of 3 allowed")
    html = page.inner_text("body")
    assert re.search(r"\d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d", html)  # "1 December 2026, 09:30"
    assert not re.search(r"\b(Envoyée|Échec|Prolongé|prolongation|Annulée|décembre|janvier)\b", html)
    shoot(page, "desk-loan-en.png")

    page.goto(f"{live_server.url}/notifications/")
    expect(page.locator("#log-tabs a[data-tab=activity]")).to_contain_text("Activity")
    shoot(page, "desk-activity-en.png")
    context.close()


def test_lists_filters_and_the_loan_page_at_phone_width(browser, live_server, desk):  # noqa: F811
    from playwright.sync_api import expect

    loan, *_ = a_day_at_the_desk(desk)
    context, page = open_page(browser, live_server, viewport=PHONE)
    log_in(page, live_server)
    shoot(page, "desk-phone-dashboard.png")

    for path, name in (
        ("/loans/?state=all", "desk-phone-loans.png"),
        (f"/loans/{loan.pk}/", "desk-phone-loan.png"),
        ("/notifications/", "desk-phone-activity.png"),
        ("/clients/", "desk-phone-clients.png"),
    ):
        page.goto(f"{live_server.url}{path}")
        header = page.locator("header.topbar").bounding_box()
        assert header["height"] < PHONE["height"] / 6, (path, header)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)  # nothing cut off, nothing to scroll sideways
        shoot(page, name)

    page.goto(f"{live_server.url}/loans/?state=all")
    first = page.locator("#loans tbody tr").first
    expect(first.locator("td").nth(2)).to_have_attribute("data-label", re.compile("Début|Start"))
    page.fill("input[name=q]", "CAM-0042")
    page.click("form.filters button[type=submit]")
    expect(page.locator("#loans tbody tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "desk-phone-loans-filtered.png")
    context.close()
