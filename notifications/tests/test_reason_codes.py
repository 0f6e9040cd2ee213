"""Cancellation and failure reasons are codes with parameters, put into words in the page's language."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone, translation

from assets import services
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications import lifecycle
from notifications.models import NotificationLog, Statut

pytestmark = pytest.mark.django_db
migration = importlib.import_module("notifications.migrations.0016_reason_texts_to_codes")


def planned(loan, kind="RAPPEL_2H"):
    return NotificationLog.objects.create(
        attribution=loan, type_notification=kind, canal="EMAIL", statut=Statut.EN_ATTENTE,
        date_scheduled=timezone.now() + timedelta(hours=1),
    )  # fmt: skip


def test_a_moved_due_date_stores_the_dates_and_each_language_writes_them_its_way():
    row = planned(AttributionFactory())
    lifecycle.cancel(
        NotificationLog.objects.filter(pk=row.pk),
        code="DUE_MOVED",
        old=datetime(2026, 12, 20, 9, 30, tzinfo=UTC),
        new=datetime(2026, 12, 22, 9, 30, tzinfo=UTC),
    )
    row.refresh_from_db()
    assert (row.statut, row.erreur_message) == (Statut.ANNULEE, "")
    with translation.override("fr"):
        assert row.our_words == "La date de retour est passée du 20 déc. 2026 à 10:30 au 22 déc. 2026 à 10:30."
    with translation.override("en"):
        assert row.our_words == "The due date moved from 20 Dec 2026, 10:30 to 22 Dec 2026, 10:30."


def test_returning_a_loan_cancels_its_reminders_with_a_code(django_capture_on_commit_callbacks):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=now + timedelta(hours=3), now=now)
    planned(loan, "RAPPEL_2H") if not NotificationLog.objects.filter(
        attribution=loan, type_notification="RAPPEL_2H"
    ) else None
    with django_capture_on_commit_callbacks(execute=True):
        services.record_return(loan, now=now + timedelta(minutes=5))
    row = NotificationLog.objects.get(attribution=loan, type_notification="RAPPEL_2H")
    assert (row.statut, row.reason_code, row.erreur_message) == (Statut.ANNULEE, "REMINDER_AFTER_RETURN", "")


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_loan_page_shows_a_return_cancellation_in_its_own_language(staff_client, settings, language):
    settings.LANGUAGE_CODE = language
    loan = AttributionFactory()
    planned(loan)
    lifecycle.cancel_pending_reminders(loan, code="REMINDER_AFTER_RETURN")

    html = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()

    english, french = "Loan returned before this reminder was sent.", "Prêt restitué avant l’envoi de ce rappel."
    assert (french if language == "fr" else english) in html
    assert (english if language == "fr" else french) not in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Loan returned before this reminder was sent.", ("REMINDER_AFTER_RETURN", {}, "")),
        ("Prêt restitué avant l’envoi de ce rappel.", ("REMINDER_AFTER_RETURN", {}, "")),
        ("Cancelled by desk.", ("CANCELLED_BY", {"user": "desk"}, "")),
        ("Annulée par marie.", ("CANCELLED_BY", {"user": "marie"}, "")),
        (
            "La date de retour est passée du 2026-07-14 10:30 au 2026-07-15 10:30.",
            ("DUE_MOVED", {"old": "2026-07-14T10:30:00+02:00", "new": "2026-07-15T10:30:00+02:00"}, ""),
        ),
        ("The borrower switched WHATSAPP off.", ("CHANNEL_OFF", {"canal": "WHATSAPP"}, "")),
        (
            "Gave up after 3 attempts: Mail server answered 451 try later",
            ("", {"gave_up_after": 3}, "Mail server answered 451 try later"),
        ),
        (
            "Twilio HTTP 400, error 21211: bad number Fell back to EMAIL (notification 12).",
            ("", {"fallback_canal": "EMAIL", "fallback_id": 12}, "Twilio HTTP 400, error 21211: bad number"),
        ),
        (
            "Twilio reported the message undelivered: error 63016. Fell back to SMS (notification 9).",
            (
                "TWILIO_STATUS",
                {"status": "undelivered", "error": "63016", "fallback_canal": "SMS", "fallback_id": 9},
                "",
            ),
        ),
        ("550 5.1.1 no such user", None),
    ],
)
def test_the_migration_recognises_the_texts_of_the_previous_release(text, expected):
    assert migration.convert(text) == expected


def test_the_migration_rewrites_recognised_rows_and_leaves_provider_texts_alone():
    loan = AttributionFactory()
    ours = NotificationLog.objects.create(
        attribution=loan, type_notification="RAPPEL_2H", canal="EMAIL", statut=Statut.ANNULEE,
        erreur_message="Cancelled by desk.",
    )  # fmt: skip
    theirs = NotificationLog.objects.create(
        attribution=loan, type_notification="CREATION", canal="EMAIL", statut=Statut.ECHEC_PERMANENT,
        erreur_message="550 5.1.1 no such user",
    )  # fmt: skip

    migration.forwards(apps, None)

    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.reason_code, ours.reason_params, ours.erreur_message) == ("CANCELLED_BY", {"user": "desk"}, "")
    assert (theirs.reason_code, theirs.erreur_message) == ("", "550 5.1.1 no such user")
    with translation.override("fr"):
        assert ours.our_words == "Annulée par desk."
