"""Experiments and the learned send time in a real browser: create an experiment, read its report, see a learned time.

Screenshots land in test-results/ (experiment-*.png, loan-learned-send-time.png).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from notifications.models import Experiment
from notifications.tests.history import past_loans

from .test_browser import browser, log_in, page, shoot  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def experimenter() -> None:
    user: User = StaffFactory(username="desk")  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    user.user_permissions.add(Permission.objects.get(codename="run_experiment"))


def test_create_an_experiment_read_its_report_and_stop_it(page, live_server, settings):  # noqa: F811
    from playwright.sync_api import expect

    settings.LANGUAGE_CODE = "fr"
    settings.EXPERIMENT_MIN_LOANS = 30
    experimenter()
    log_in(page, live_server)
    page.goto(f"{live_server.url}/notifications/")
    page.click("#experiments-link")
    expect(page.locator("h1")).to_have_text("Expériences sur les messages")
    page.click("#new-experiment")

    page.fill("input[name=name]", "Rappel plus court")
    page.select_option("select[name=type_notification]", "RAPPEL_J_MOINS_1")
    page.select_option("select[name=canal]", "EMAIL")
    page.select_option("select[name=language]", "fr")
    page.fill("input[name=variants-0-subject]", "Rappel : {{ materiel_code }}")
    page.fill("textarea[name=variants-0-body]", "Bonjour {{ client_name }}, retour attendu le {{ due }}.")
    page.fill("input[name=variants-1-subject]", "Demain : {{ materiel_code }}")
    page.fill("textarea[name=variants-1-body]", "{{ client_name }}, à demain {{ nom_inconnu }} !")
    page.click("#experiment-form button[type=submit].primary")
    # Refused exactly as a message override would be, with the reason by the field.
    expect(page.locator("#variant-B .errorlist")).to_contain_text("nom_inconnu")
    shoot(page, "experiment-refused-variant.png")
    page.fill("textarea[name=variants-1-body]", "{{ client_name }}, à demain !")
    page.click("#experiment-form button[type=submit].primary")

    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    expect(page.locator("#conclusion")).to_contain_text("Pas assez de données pour conclure")
    experiment = Experiment.objects.get()
    a, b = experiment.variants.order_by("id")
    sent_at = timezone.now() - timedelta(days=10)
    past_loans(60, sent_at=sent_at, on_time=30, variant=a)
    past_loans(60, sent_at=sent_at, on_time=50, variant=b)
    page.reload()
    expect(page.locator("#conclusion")).to_contain_text("B fait mieux que A")
    expect(page.locator("#comparisons li[data-label=B]")).to_contain_text("+33.3 points")
    expect(page.locator("#results tr[data-label=B] .rate")).to_contain_text("83 %")
    expect(page.locator("#results thead")).to_contain_text("taux à l’heure (intervalle à 95 %)")
    shoot(page, "experiment-report-fr.png")
    page.click(".lang-switch button[value=en]")
    expect(page.locator("#conclusion")).to_contain_text("B does better than A")
    shoot(page, "experiment-report-en.png")

    expect(page.locator("#winner-B")).to_be_checked()  # the report's suggestion
    page.click("#stop-form button[type=submit]")
    expect(page.locator(".message.success")).to_contain_text("variant B is now the message for everyone")
    expect(page.locator("#experiment-status")).to_have_text("Stopped")
    experiment.refresh_from_db()
    assert experiment.winner == b


def test_a_learned_send_time_and_its_reason_on_the_loan_page(page, live_server, settings):  # noqa: F811
    from playwright.sync_api import expect

    settings.LANGUAGE_CODE = "fr"
    settings.WHATSAPP_ENABLED = False
    settings.SEND_TIME_LEARNING = True
    settings.SEND_TIME_EXPLORATION = 0.0
    StaffFactory(username="desk")
    today = timezone.localdate()
    for hour, on_time in ((8, 16), (12, 36)):
        sent_at = timezone.make_aware(datetime.combine(today - timedelta(days=20), time(hour, 10)))
        past_loans(40, sent_at=sent_at, on_time=on_time)
    due = timezone.make_aware(datetime.combine(today + timedelta(days=5), time(17, 0)))
    loan = services.lend(
        materiel=MaterielFactory(code="CAM-0042"),
        client=ClientFactory(phone="", name="Alice Martin"),
        due=due,
        now=timezone.now(),
        by=None,
    )

    log_in(page, live_server)
    page.goto(f"{live_server.url}/loans/{loan.pk}/")
    reminder = page.locator("#timeline li[data-type=RAPPEL_J_MOINS_1]")
    expect(reminder.locator(".send-time[data-source=LEARNED]")).to_contain_text(
        "appris : 12:30, d’après 80 rappels de tous les emprunteurs"
    )
    shoot(page, "loan-learned-send-time.png")
    page.click(".lang-switch button[value=en]")
    expect(reminder.locator(".send-time")).to_contain_text("learned: 12:30, from 80 reminders of all borrowers")
