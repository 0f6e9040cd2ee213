"""Materials and clients: create, edit, and a client's notification preferences."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assets.models import Client, Materiel
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications.models import NotificationPreferences


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


def test_create_and_edit_a_material(staff_client):
    response = staff_client.post(
        reverse("materiel_create"), {"code": " TRI-01 ", "name": "Tripod", "category": "Photo", "state": "available"}
    )
    assert response.status_code == 302
    materiel = Materiel.objects.get(code="TRI-01")
    staff_client.post(
        reverse("materiel_edit", args=[materiel.pk]),
        {"code": "TRI-01", "name": "Tripod", "category": "Photo", "state": "out_of_service", "notes": "leg broken"},
    )
    materiel.refresh_from_db()
    assert (materiel.state, materiel.notes) == ("out_of_service", "leg broken")


def test_duplicate_code_is_a_field_error(staff_client):
    MaterielFactory(code="TRI-02")
    response = staff_client.post(reverse("materiel_create"), {"code": "TRI-02", "name": "Other", "state": "available"})
    assert response.status_code == 200
    assert "already exists" in response.context["form"].errors["code"][0]


def test_lent_state_follows_the_loans_only(staff_client):
    loan = AttributionFactory()
    response = staff_client.post(
        reverse("materiel_edit", args=[loan.materiel_id]),
        {"code": loan.materiel.code, "name": "x", "state": "available"},
    )
    assert "follows the loans" in response.context["form"].errors["state"][0]
    assert Materiel.objects.get(pk=loan.materiel_id).state == Materiel.State.LENT


def test_create_a_client_normalises_the_phone(staff_client):
    response = staff_client.post(
        reverse("client_create"), {"name": "Léa", "phone": "06 12 34 56 78", "language": "fr", "email": ""}
    )
    client = Client.objects.get(name="Léa")
    assert response["Location"] == reverse("client_detail", args=[client.pk])
    assert client.phone == "+33612345678"


def test_client_needs_a_way_to_be_reached_and_keeps_the_input(staff_client):
    response = staff_client.post(
        reverse("client_create"), {"name": "Nobody", "organisation": "Radio", "language": "en"}
    )
    assert response.context["form"].non_field_errors() == [
        "Give an email address or a phone number, or the client cannot be notified."
    ]
    assert 'value="Nobody"' in response.content.decode()
    response = staff_client.post(reverse("client_create"), {"name": "Bad", "phone": "12", "language": "en"})
    assert "not a valid phone number" in response.context["form"].errors["phone"][0]
    assert not Client.objects.exists()


def test_client_preferences_are_created_then_edited(staff_client):
    client = ClientFactory()
    page = staff_client.get(reverse("client_detail", args=[client.pk])).content.decode()
    assert "Notification preferences" in page
    staff_client.post(
        reverse("client_detail", args=[client.pk]),
        {"notifications_email": "on", "phone_number": "+44 20 7946 0958", "rappel_final": "on"},
    )
    prefs = NotificationPreferences.objects.get(client=client)
    assert (prefs.notifications_email, prefs.notifications_whatsapp, prefs.rappel_2h_avant, prefs.rappel_final) == (
        True,
        False,
        False,
        True,
    )
    assert prefs.phone_number == "+442079460958"
    response = staff_client.post(reverse("client_detail", args=[client.pk]), {"phone_number": "not a phone"})
    assert response.status_code == 200 and response.context["form"].errors["phone_number"]
    assert NotificationPreferences.objects.get(client=client).notifications_email is True


def test_client_page_lists_their_loans(staff_client):
    loan = AttributionFactory(materiel__code="CLI-LOAN-1")
    assert "CLI-LOAN-1" in staff_client.get(reverse("client_detail", args=[loan.client_id])).content.decode()
