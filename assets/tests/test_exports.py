"""Loan exports people open in Excel: BOM, translated headers and values, formula-safe cells."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Client
from assets.tests.factories import AttributionFactory, ClientFactory

pytestmark = pytest.mark.django_db


def read(response, delimiter=","):
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def test_the_loans_export_follows_the_list_filters_in_english(staff_client, settings):
    settings.LANGUAGE_CODE = "en"
    now = timezone.now()
    AttributionFactory(
        materiel__code="CAM-1", date_debut=now - timedelta(hours=5), date_retour_prevue=now - timedelta(hours=2)
    )
    AttributionFactory(materiel__code="CAM-2", date_debut=now, date_retour_prevue=now + timedelta(hours=3))

    rows = read(staff_client.get(reverse("loan_export"), {"state": "overdue"}))

    assert [row["Material code"] for row in rows] == ["CAM-1"]
    assert rows[0]["Status"] == "Overdue" and rows[0]["Late by"] == "2 h 00"
    assert rows[0]["Duration class"] == "Short (< 4 h)"


def test_the_overdue_report_in_french_names_whom_to_call(staff_client, settings):
    settings.LANGUAGE_CODE = "fr"
    now = timezone.now()
    client = ClientFactory(name="Élodie", email="elodie@example.org")
    AttributionFactory(client=client, date_debut=now - timedelta(days=5), date_retour_prevue=now - timedelta(days=3))
    AttributionFactory(date_debut=now, date_retour_prevue=now + timedelta(hours=3))
    Client.objects.filter(pk=client.pk).update(organisation="=HYPERLINK(1)")

    response = staff_client.get(reverse("overdue_report"))
    rows = read(response, delimiter=";")

    assert response["Content-Disposition"].startswith('attachment; filename="overdue-')
    assert len(rows) == 1
    assert rows[0]["Client"] == "Élodie" and rows[0]["E-mail"] == "elodie@example.org"
    assert rows[0]["Jours de retard"] == "3"
    assert rows[0]["Organisation"] == "'=HYPERLINK(1)"
