"""Loans saved without `assets.services` still notify (the spec's Phase 6): once, after commit, never for raw fixtures.

Each path is checked against the real send path: rows planned and emails sent.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from assets import services
from assets.models import Attribution
from assets.signals import attribution_created, attribution_returned
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import NotificationLog

pytestmark = pytest.mark.django_db


def kinds(loan) -> list[str]:
    return sorted(NotificationLog.objects.filter(attribution=loan).values_list("type_notification", flat=True))


def subjects(mailoutbox) -> list[str]:
    return [message.subject.split(" :")[0] for message in mailoutbox]


@pytest.fixture
def announced():
    """Every lifecycle signal sent, as (signal name, loan id): planning is idempotent, so count the signals too."""
    sent = []

    def record(name):
        return lambda sender, attribution, **kwargs: sent.append((name, attribution.pk))

    receivers = {attribution_created: record("created"), attribution_returned: record("returned")}
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield sent
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_the_service_path_notifies_once(mailoutbox, django_capture_on_commit_callbacks, announced):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=now + timedelta(hours=3), now=now)
    assert kinds(loan) == ["CREATION", "RAPPEL_2H"]
    assert subjects(mailoutbox) == ["Prêt confirmé"]

    with django_capture_on_commit_callbacks(execute=True):
        services.record_return(loan, now=timezone.now())
    assert subjects(mailoutbox) == ["Prêt confirmé", "Retour enregistré"]
    assert announced == [("created", loan.pk), ("returned", loan.pk)]
    assert NotificationLog.objects.get(attribution=loan, type_notification="RAPPEL_2H").statut == "ANNULEE"


def test_a_loan_created_in_a_shell_notifies_once(mailoutbox, django_capture_on_commit_callbacks, announced):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        loan = Attribution.objects.create(
            materiel=MaterielFactory(),
            client=ClientFactory(),
            date_debut=now,
            date_retour_prevue=now + timedelta(days=5),
        )
    assert kinds(loan) == ["CREATION", "RAPPEL_FINAL", "RAPPEL_J_MOINS_1", "RAPPEL_J_MOINS_2"]
    assert subjects(mailoutbox) == ["Prêt confirmé"]
    assert announced == [("created", loan.pk)]


def test_setting_the_return_date_and_saving_notifies_once(mailoutbox, django_capture_on_commit_callbacks, announced):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        loan = Attribution.objects.create(
            materiel=MaterielFactory(),
            client=ClientFactory(),
            date_debut=now,
            date_retour_prevue=now + timedelta(hours=3),
        )
    with django_capture_on_commit_callbacks(execute=True):
        loan.date_retour_effective = timezone.now()
        loan.save()
    with django_capture_on_commit_callbacks(execute=True):
        loan.notes = "back in its case"
        loan.save()  # already returned: nothing new
    assert subjects(mailoutbox) == ["Prêt confirmé", "Retour enregistré"]
    assert NotificationLog.objects.filter(attribution=loan, type_notification="RESTITUTION").count() == 1
    assert announced == [("created", loan.pk), ("returned", loan.pk)]
    assert NotificationLog.objects.get(attribution=loan, type_notification="RAPPEL_2H").statut == "ANNULEE"


def test_nothing_is_sent_when_the_transaction_rolls_back(mailoutbox, django_capture_on_commit_callbacks):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            Attribution.objects.create(
                materiel=MaterielFactory(),
                client=ClientFactory(),
                date_debut=now,
                date_retour_prevue=now + timedelta(hours=3),
            )
            raise RuntimeError("import aborted")
    assert NotificationLog.objects.count() == 0 and mailoutbox == []


def test_fixtures_loaded_raw_send_nothing(tmp_path, mailoutbox, django_capture_on_commit_callbacks, announced):
    materiel, client = MaterielFactory(), ClientFactory()
    now = timezone.now()
    fixture = tmp_path / "loans.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "assets.attribution",
                    "pk": 9001,
                    "fields": {
                        "materiel": materiel.pk,
                        "client": client.pk,
                        "date_debut": now.isoformat(),
                        "date_retour_prevue": (now + timedelta(hours=3)).isoformat(),
                        "date_retour_effective": None,
                        "statut": "EN_COURS",
                        "duree": "COURT",
                        "notes": "",
                        "created_at": now.isoformat(),
                    },
                }
            ]
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        call_command("loaddata", str(fixture), verbosity=0)
    assert Attribution.objects.filter(pk=9001).exists()
    assert NotificationLog.objects.count() == 0 and mailoutbox == [] and announced == []
