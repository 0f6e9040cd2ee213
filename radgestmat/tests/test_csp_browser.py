"""Every staff page, the admin included, in Chromium under the Content-Security-Policy: the header is
there and the page triggers no violation (no inline script, style attribute or handler, nothing from elsewhere)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from assets.models import Attribution, Client
from assets.tests.factories import AttributionFactory, ClientFactory, StaffFactory
from notifications.models import Canal, MessageOverride, NotificationLog, Statut, TypeNotification
from radgestmat.tests.test_browser import browser, log_in, page  # noqa: F401  (the fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def staff_pages() -> list[str]:
    client: Client = ClientFactory(name="Alice Martin", email="alice@example.org")  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    loan: Attribution = AttributionFactory(client=client)  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    AttributionFactory(
        date_debut=timezone.now() - timedelta(days=3), date_retour_prevue=timezone.now() - timedelta(days=1)
    )  # overdue, for the dashboard's red side
    sent = NotificationLog.objects.create(
        attribution=loan,
        type_notification=TypeNotification.CREATION,
        canal=Canal.EMAIL,
        statut=Statut.ENVOYEE,
        date_scheduled=timezone.now() - timedelta(hours=1),
        date_envoi=timezone.now() - timedelta(hours=1),
    )
    failed = NotificationLog.objects.create(
        attribution=loan,
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.WHATSAPP,
        statut=Statut.ECHEC_PERMANENT,
        erreur_message="Twilio 21211: invalid number\nsecond line",
        date_scheduled=timezone.now() - timedelta(minutes=30),
    )
    MessageOverride.objects.create(
        type_notification=TypeNotification.CREATION,
        canal=Canal.EMAIL,
        language="fr",
        subject="Prêt de {{ materiel_name }}",
        body="Bonjour {{ client_name }}",
    )
    call_command("setup_schedule", verbosity=0)
    pages = [
        reverse("home"),
        reverse("loan_list"),
        reverse("loan_list") + "?state=overdue",
        reverse("loan_lend"),
        reverse("scan_return"),
        reverse("basket"),
        reverse("loan_detail", args=[loan.pk]),
        reverse("loan_extend", args=[loan.pk]),
        reverse("loan_return", args=[loan.pk]),
        reverse("materiel_list"),
        reverse("materiel_create"),
        reverse("materiel_edit", args=[loan.materiel.pk]),
        reverse("client_list"),
        reverse("client_create"),
        reverse("client_detail", args=[client.pk]),
        reverse("client_edit", args=[client.pk]),
        reverse("notification_log"),
        reverse("notification_detail", args=[failed.pk]),
        reverse("notification_detail", args=[sent.pk]),
        reverse("delivery_report"),
        reverse("scheduler"),
        reverse("admin:index"),
    ]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(_superuser_request()):
            pages.append(reverse("admin:{}_{}_add".format(*info)))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    return pages


def _superuser_request():
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = StaffFactory(username="desk")
    return request


def test_no_staff_page_violates_the_content_security_policy(page, live_server):  # noqa: F811
    from playwright.sync_api import expect

    StaffFactory(username="desk", is_superuser=True)
    pages = staff_pages()
    assert len(pages) > 35
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    page.add_init_script(RECORD_VIOLATIONS)

    response = page.goto(f"{live_server.url}/login/")
    headers = {"/login/": response.headers.get("content-security-policy")}
    log_in(page, live_server)
    violations = {}
    for path in pages:
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        headers[path] = response.headers.get("content-security-policy")
        page.wait_for_load_state("load")
        if path == reverse("loan_lend"):  # the lend script runs and asks the server for previews
            page.fill("input[name=materiel]", loan_code := "MAT-NOPE")
            expect(page.locator("#materiel-preview")).to_contain_text(loan_code)
        if path == reverse("notification_log"):  # the select-all box, now a static script
            page.click("#select-all")
            assert page.locator("#log tbody input[type=checkbox]:checked").count() == 2
        if re.search(r"/admin/django_celery_beat/periodictask/\d+/change/", path):  # the nonce'd inline script ran
            expect(page.locator(".field-crontab_translation")).to_be_hidden()
        found = page.evaluate("window.__cspViolations")
        if found:
            violations[path] = found

    assert {path: policy for path, policy in headers.items() if not policy or "script-src 'self'" not in policy} == {}
    assert violations == {}
    assert refused == []
