"""The dashboard: what needs attention now, this week's notifications, and the red banner."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse

from assets.tests.factories import AttributionFactory
from notifications.api import forget_scheduler_status
from notifications.models import Canal, NotificationLog, Statut, TypeNotification

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 10, 25, 14, 0, tzinfo=PARIS)  # the autumn DST change was at 03:00 this morning


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    forget_scheduler_status()
    # The web process started long ago: the start-up grace period is over (see the grace tests).
    monkeypatch.setattr(apps.get_app_config("assets"), "started_at", NOW - timedelta(hours=1))
    with time_machine.travel(NOW, tick=False):
        yield
    forget_scheduler_status()


def log(loan, statut, day_offset=0, canal=Canal.EMAIL, **fields):
    return NotificationLog.objects.create(
        attribution=loan,
        type_notification=fields.pop("type_notification", TypeNotification.CREATION),
        canal=canal,
        statut=statut,
        date_scheduled=NOW - timedelta(days=day_offset, minutes=30),
        **fields,
    )


def test_counts_and_lists(staff_client):
    late = AttributionFactory(
        materiel__code="LATE", date_debut=NOW - timedelta(hours=6), date_retour_prevue=NOW - timedelta(minutes=95)
    )
    AttributionFactory(
        materiel__code="SOON", date_debut=NOW - timedelta(hours=1), date_retour_prevue=NOW + timedelta(minutes=90)
    )
    AttributionFactory(materiel__code="TONIGHT", date_debut=NOW, date_retour_prevue=NOW + timedelta(hours=8))
    AttributionFactory(materiel__code="LONG", date_debut=NOW, date_retour_prevue=NOW + timedelta(days=3))
    AttributionFactory(
        materiel__code="BACK", date_debut=NOW - timedelta(days=2), date_retour_effective=NOW - timedelta(hours=13)
    )  # 01:00 this morning: today
    AttributionFactory(
        materiel__code="YESTERDAY", date_debut=NOW - timedelta(days=2), date_retour_effective=NOW - timedelta(hours=15)
    )
    response = staff_client.get(reverse("home"))
    context = response.context
    assert context["counts"] == {
        "out": 4,
        "overdue": 1,
        "due_2h": 1,
        "due_today": 2,
        "returned_today": 1,
        "unreachable": 0,
    }
    assert [(value, n) for value, _label, n in context["by_class"]] == [("COURT", 1), ("MOYEN", 2), ("LONG", 1)]
    assert [loan.materiel.code for loan in context["overdue"]] == ["LATE"]
    assert [loan.materiel.code for loan in context["due_today"]] == ["SOON", "TONIGHT"]
    assert "1 h 35" in response.content.decode() and late.pk


def test_week_chart_counts_per_local_day_and_channel(staff_client):
    loan = AttributionFactory()
    log(loan, Statut.ENVOYEE, type_notification=TypeNotification.CREATION)
    log(loan, Statut.ECHEC_PERMANENT, canal=Canal.WHATSAPP, type_notification=TypeNotification.CREATION)
    log(loan, Statut.ENVOYEE, day_offset=6, type_notification=TypeNotification.RAPPEL_2H)
    log(loan, Statut.ENVOYEE, day_offset=9, type_notification=TypeNotification.RETARD)  # outside the week
    context = staff_client.get(reverse("home")).context
    bars = context["bars"]
    assert [bar.day.isoformat() for bar in bars][0] == "2026-10-19" and len(bars) == 7
    assert bars[-1].counts == {"sent": 1, "failed": 1}
    assert bars[0].counts == {"sent": 1}
    assert {canal: row["sent"] for canal, _label, row in context["channels"]} == {"EMAIL": 2, "WHATSAPP": 0}


def test_banner_turns_red_when_failures_pile_up(staff_client, settings):
    settings.DASHBOARD_FAILURE_ALERT = 3
    loan = AttributionFactory()
    for level in range(3):
        log(loan, Statut.ECHEC_PERMANENT, type_notification=TypeNotification.RETARD, niveau_escalade=level + 1)
    html = staff_client.get(reverse("home")).content.decode()
    assert "3 messages could not be delivered in the last 24 hours." in html


def test_banner_turns_red_when_due_notifications_are_not_picked_up(staff_client):
    log(AttributionFactory(), Statut.EN_ATTENTE)  # due 30 minutes ago, still waiting
    html = staff_client.get(reverse("home")).content.decode()
    assert "Automatic messages to borrowers are not going out right now." in html
    assert "1 message is more than 10 minutes late." in html


OPS_WORDS = ("beat", "relay", "worker", "setup_schedule", "dispatch_due", "ping", "Celery")


def test_banner_reports_a_dead_scheduler_in_desk_words_and_links_the_details(staff_client):
    # The jobs are registered, but no beat has ever run the relay and no worker answers the ping.
    call_command("setup_schedule", verbosity=0)
    html = staff_client.get(reverse("home")).content.decode()
    assert 'id="not-sending"' in html and reverse("scheduler") in html
    for word in OPS_WORDS:
        assert word not in html.replace("/scheduler/", ""), word
    assert "no worker answered the ping" in staff_client.get(reverse("scheduler")).content.decode()


@pytest.mark.parametrize("minutes_since_start", [0, 2, 9])
def test_no_red_banner_in_the_first_minutes_after_the_stack_starts(staff_client, monkeypatch, minutes_since_start):
    call_command("setup_schedule", verbosity=0)  # beat never ticked, no worker answers: a stack just starting
    log(AttributionFactory(), Statut.EN_ATTENTE)  # a backlog from before the restart
    monkeypatch.setattr(apps.get_app_config("assets"), "started_at", NOW - timedelta(minutes=minutes_since_start))
    html = staff_client.get(reverse("home")).content.decode()
    assert 'id="attention"' not in html
    assert 'id="starting-up"' in html and f"14:{10 - minutes_since_start:02d}" in html


def test_the_red_banner_comes_back_when_the_grace_period_is_over(staff_client, monkeypatch):
    call_command("setup_schedule", verbosity=0)
    monkeypatch.setattr(apps.get_app_config("assets"), "started_at", NOW - timedelta(minutes=10))
    html = staff_client.get(reverse("home")).content.decode()
    assert 'id="not-sending"' in html and 'id="starting-up"' not in html


def test_each_card_opens_the_list_of_what_it_counts(staff_client):
    AttributionFactory(
        materiel__code="SOON", date_debut=NOW - timedelta(hours=1), date_retour_prevue=NOW + timedelta(minutes=90)
    )
    AttributionFactory(materiel__code="TONIGHT", date_debut=NOW, date_retour_prevue=NOW + timedelta(hours=8))
    AttributionFactory(materiel__code="LATER", date_debut=NOW, date_retour_prevue=NOW + timedelta(days=2))
    AttributionFactory(
        materiel__code="BACK", date_debut=NOW - timedelta(days=2), date_retour_effective=NOW - timedelta(hours=1)
    )
    html = staff_client.get(reverse("home")).content.decode()
    expected = {
        "window=due_2h": ["SOON"],
        "window=due_today": ["SOON", "TONIGHT"],
        "state=returned&window=returned_today": ["BACK"],
        "state=overdue": [],
    }
    for query, codes in expected.items():
        assert f'/loans/?{query.replace("&", "&amp;")}"' in html, query
        page = staff_client.get(f"/loans/?{query}").context["page"]
        assert [loan.materiel.code for loan in page] == codes, query


def test_scheduler_page_lists_the_jobs(staff_client):
    call_command("setup_schedule", verbosity=0)
    response = staff_client.get(reverse("scheduler"))
    html = response.content.decode()
    for name in ("check_court_terme_reminders", "check_overdue", "dispatch_due_notifications"):
        assert name in html
    assert "Flower" in html


def test_a_french_desk_reads_the_scheduler_problems_in_french(staff_client, settings):
    """The cached status is per language: an English page computed first does not leak into the French one."""
    call_command("setup_schedule", verbosity=0)
    staff_client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en")
    settings.LANGUAGE_CODE = "fr"
    html = staff_client.get(reverse("scheduler")).content.decode()
    assert "aucun worker n’a répondu au ping" in html
    assert "beat n’a pas lancé le relais depuis 10 minutes" in html
    assert "no worker answered the ping" not in html
