"""The borrower page at phone width in a real browser: from the link of an email the SMTP sink received,
an extension request, the staff approving it in the staff pages, and the borrower told afterwards.

Screenshots land in test-results/ (borrower-*.png).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from assets import services
from assets.models import Attribution, ExtensionRequest
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications.models import NotificationLog, Statut, TypeNotification
from notifications.relay import dispatch_due_notifications
from notifications.tests.conftest import smtp_sink  # noqa: F401  (the real SMTP server fixture)
from radgestmat.tests.test_browser import browser, log_in, shoot  # noqa: F401  (Chromium, module-wide)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PARIS = ZoneInfo("Europe/Paris")
# A weekday morning after the machine's own date: the browser's real clock must not see the cookies as expired.
START = datetime(2027, 3, 10, 10, 0, tzinfo=PARIS)
LINK = re.compile(r"https?://\S+?/b/[A-Za-z0-9_.\-]+/")
PHONE = {"width": 390, "height": 844}


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_borrower_extends_from_the_email_link_and_staff_approve(
    browser,  # noqa: F811
    live_server,
    smtp_sink,  # noqa: F811
    settings,
    fresh_borrower_counters,
):
    from playwright.sync_api import expect

    settings.PUBLIC_BASE_URL = live_server.url
    with time_machine.travel(START, tick=True):
        StaffFactory(username="desk")
        alice = ClientFactory(name="Alice Martin", email="alice@example.org", language="fr")
        loan = services.lend(
            materiel=MaterielFactory(code="CAM-0042", name="Canon XF405"),
            client=alice,
            due=START + timedelta(hours=3),
            now=timezone.now(),
        )

        # The loan confirmation, as the borrower received it over SMTP.
        [creation] = smtp_sink.messages
        link = LINK.search(text_of(creation)).group(0)
        assert link.startswith(live_server.url)

        phone = browser.new_context(viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True)
        borrower = phone.new_page()
        borrower.set_default_timeout(15_000)
        refused_by_csp: list[str] = []
        borrower.on("console", lambda m: refused_by_csp.append(m.text) if "Content Security Policy" in m.text else None)
        borrower.goto(link)
        expect(borrower.locator("h1")).to_contain_text("Bonjour Alice Martin")
        expect(borrower.locator(f"#loan-{loan.pk} .due-time")).to_be_visible()
        # Phone width: nothing wider than the screen.
        assert borrower.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot(borrower, "borrower-page.png")

        borrower.click(f"#loan-{loan.pk} summary")
        new_due = timezone.localtime(loan.date_retour_prevue + timedelta(hours=3))
        borrower.fill(f"#extend-{loan.pk} input[name=new_due]", new_due.strftime("%Y-%m-%dT%H:%M"))
        shoot(borrower, "borrower-extend-form.png")
        borrower.click(f"#extend-{loan.pk} button[type=submit]")
        expect(borrower.locator("#done")).to_contain_text("demande de prolongation")
        expect(borrower.locator(f"#pending-{loan.pk}")).to_be_visible()
        shoot(borrower, "borrower-requested.png")
        request = ExtensionRequest.objects.get()
        assert request.statut == ExtensionRequest.Statut.EN_ATTENTE

        # Staff see it on the dashboard and approve it from the loan page.
        desk = browser.new_context(viewport={"width": 1360, "height": 900}, locale="fr-FR")
        staff = desk.new_page()
        staff.set_default_timeout(15_000)
        log_in(staff, live_server)
        expect(staff.locator(f"#pending-extensions tr[data-extension='{request.pk}']")).to_be_visible()
        shoot(staff, "borrower-staff-dashboard.png")
        staff.click(f"#pending-extensions tr[data-extension='{request.pk}'] a[href*='/loans/']")
        staff.wait_for_url(re.compile(rf"/loans/{loan.pk}/"))
        sent_before = len(smtp_sink.messages)
        approved_at = timezone.now()
        staff.click(f"#approve-{request.pk}")
        expect(staff.locator(".message.success")).to_be_visible()
        expect(staff.locator(f"#extension-{request.pk}")).to_have_attribute("data-statut", "ACCORDEE")
        shoot(staff, "borrower-staff-approved.png")

        loan.refresh_from_db()
        assert loan.date_retour_prevue == new_due
        if "PROLONGATION" in TypeNotification.values:
            # The extension notice that `assets.services.extend` sends (the "texts" branch).
            notice = NotificationLog.objects.get(attribution=loan, type_notification="PROLONGATION", canal="EMAIL")
            assert notice.statut == Statut.ENVOYEE and notice.date_envoi >= approved_at
            assert len(smtp_sink.messages) > sent_before
        # The reminder re-armed for the new due time goes out when its time comes, with the link.
        reminder = NotificationLog.objects.get(attribution=loan, type_notification=TypeNotification.RAPPEL_2H)
        assert reminder.statut == Statut.EN_ATTENTE
        assert reminder.date_scheduled == loan.date_retour_prevue - timedelta(hours=2)

    with time_machine.travel(reminder.date_scheduled + timedelta(minutes=1), tick=True):
        received = len(smtp_sink.messages)
        dispatch_due_notifications(now=timezone.now())
        reminder.refresh_from_db()
        assert reminder.statut == Statut.ENVOYEE
        [told] = smtp_sink.messages[received:]
        assert told["To"].endswith("<alice@example.org>")
        text = text_of(told)
        assert LINK.search(text).group(0) == link  # same loan, same link
        assert "Alice Martin" in text

        borrower.goto(link)
        expect(borrower.locator(f"#loan-{loan.pk} .due-time")).to_be_visible()
        expect(borrower.locator(f"#pending-{loan.pk}")).to_have_count(0)
        shoot(borrower, "borrower-after-approval.png")

        # The borrower turns the 2 h reminder off from the same page.
        borrower.uncheck("input[name=rappel_2h_avant]")
        borrower.click("#save-preferences")
        expect(borrower.locator("#done")).to_contain_text("préférences")
        assert not Attribution.objects.get(pk=loan.pk).client.notification_preferences.rappel_2h_avant
    assert refused_by_csp == []  # nothing inline on the borrower pages
    phone.close()
    desk.close()
