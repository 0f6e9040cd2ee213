"""Lend, return and extend from the staff pages: they go through the services and keep the input on error."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from assets.models import Attribution, Materiel
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications.models import NotificationLog, TypeNotification

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=PARIS)


def local(dt: datetime) -> str:
    return dt.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


def lend(http, **data):
    return http.post(reverse("loan_lend"), data)


def test_it_lends_by_code_and_client_label(staff_client, staff_user, django_capture_on_commit_callbacks):
    materiel = MaterielFactory(code="CAM-001")
    borrower = ClientFactory(name="Alice Martin")
    with django_capture_on_commit_callbacks(execute=True):
        response = lend(
            staff_client,
            materiel="cam-001 ",
            client=f"Alice Martin · #{borrower.pk}",
            date_retour_prevue=local(NOW + timedelta(hours=3)),
        )
    loan = Attribution.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("loan_detail", args=[loan.pk])
    assert (loan.materiel, loan.client, loan.created_by, loan.duree) == (materiel, borrower, staff_user, "COURT")
    assert loan.date_debut == NOW
    assert Materiel.objects.get(pk=materiel.pk).state == Materiel.State.LENT
    assert NotificationLog.objects.filter(attribution=loan, type_notification=TypeNotification.CREATION).exists()
    page = staff_client.get(response["Location"]).content.decode()
    assert "CAM-001" in page and "Alice Martin" in page


def test_it_finds_a_client_typed_by_email(staff_client):
    MaterielFactory(code="CAM-002")
    borrower = ClientFactory(email="bob@example.org")
    lend(staff_client, materiel="CAM-002", client="BOB@example.org", date_retour_prevue=local(NOW + timedelta(days=3)))
    assert Attribution.objects.get().client == borrower


def test_unknown_code_is_shown_by_the_field_and_the_input_is_kept(staff_client):
    borrower = ClientFactory(name="Alice")
    response = lend(
        staff_client,
        materiel="NOPE-9",
        client="Alice",
        date_retour_prevue=local(NOW + timedelta(hours=2)),
        notes="tripod",
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["materiel"] == ["No material has the code “NOPE-9”."]
    html = response.content.decode()
    assert 'value="NOPE-9"' in html and 'value="Alice"' in html and "tripod" in html
    assert not Attribution.objects.exists() and borrower.pk


def test_material_already_out_names_the_borrower_and_due_date_and_links_to_the_return(staff_client):
    loan = AttributionFactory(materiel__code="CAM-003", client__name="Zoé Borrower")
    response = lend(
        staff_client,
        materiel="CAM-003",
        client=f"x · #{ClientFactory().pk}",
        date_retour_prevue=local(NOW + timedelta(hours=2)),
    )
    due = date_format(timezone.localtime(loan.date_retour_prevue), "SHORT_DATETIME_FORMAT")
    assert response.context["form"].errors["materiel"] == [f"CAM-003 is already out with Zoé Borrower (due {due})."]
    assert reverse("loan_return", args=[loan.pk]) in response.content.decode()
    assert Attribution.objects.count() == 1


def test_client_without_contact_and_due_in_the_past_are_both_reported(staff_client):
    MaterielFactory(code="CAM-004")
    mute = ClientFactory(name="Mute", email="", phone="")
    response = lend(
        staff_client,
        materiel="CAM-004",
        client=f"Mute · #{mute.pk}",
        date_retour_prevue=local(NOW - timedelta(hours=1)),
    )
    errors = response.context["form"].errors
    assert "no email address or phone number" in errors["client"][0]
    assert errors["date_retour_prevue"] == ["The due date must be after the start of the loan."]
    assert not Attribution.objects.exists()


def test_it_finds_a_client_typed_by_phone(staff_client):
    MaterielFactory(code="CAM-007")
    borrower = ClientFactory(phone="+33698765432")
    lend(staff_client, materiel="CAM-007", client="06 98 76 54 32", date_retour_prevue=local(NOW + timedelta(days=3)))
    assert Attribution.objects.get().client == borrower


def test_ambiguous_client_asks_to_pick_one(staff_client):
    MaterielFactory(code="CAM-005")
    ClientFactory(name="Dupont")
    ClientFactory(name="Dupont")
    response = lend(
        staff_client, materiel="CAM-005", client="dupont", date_retour_prevue=local(NOW + timedelta(hours=2))
    )
    assert "Several clients match" in response.context["form"].errors["client"][0]


def test_missing_fields_say_so(staff_client):
    response = lend(staff_client, materiel="", client="", date_retour_prevue="not a date")
    errors = response.context["form"].errors
    assert set(errors) == {"materiel", "client", "date_retour_prevue"}


def test_preview_names_the_material_and_the_duration_class(staff_client):
    MaterielFactory(code="CAM-006", name="Canon XF405")
    url = reverse("lend_preview")
    data = staff_client.get(url, {"code": "CAM-006", "due": local(NOW + timedelta(hours=30))}).json()
    assert data["materiel"]["ok"] is True and "Canon XF405" in data["materiel"]["message"]
    assert data["duree"] == {"ok": True, "value": "LONG", "message": "Long (> 24 h)"}
    data = staff_client.get(url, {"code": "ZZZ", "due": local(NOW + timedelta(hours=5))}).json()
    assert data["materiel"]["ok"] is False
    assert data["duree"]["value"] == "MOYEN"


def test_client_lookup_suggests_labels_with_ids(staff_client):
    alice = ClientFactory(name="Alice Martin", organisation="Radio Nord")
    data = staff_client.get(reverse("client_lookup"), {"q": "mart"}).json()
    assert data["clients"] == [f"Alice Martin (Radio Nord) · #{alice.pk}"]


def test_return_records_it_and_plans_the_receipt(staff_client, django_capture_on_commit_callbacks):
    loan = AttributionFactory(date_debut=NOW - timedelta(hours=1))
    page = staff_client.get(reverse("loan_return", args=[loan.pk])).content.decode()
    assert loan.materiel.code in page
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("loan_return", args=[loan.pk]), {})
    assert response.status_code == 302
    loan.refresh_from_db()
    assert loan.date_retour_effective == NOW and loan.statut == "RESTITUEE"
    assert NotificationLog.objects.filter(attribution=loan, type_notification=TypeNotification.RESTITUTION).exists()


def test_return_twice_shows_the_services_reason(staff_client):
    loan = AttributionFactory(date_debut=NOW - timedelta(hours=1), date_retour_effective=NOW)
    response = staff_client.post(reverse("loan_return", args=[loan.pk]), {})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["This loan was already returned."]


def test_return_before_the_start_is_refused_on_the_field(staff_client):
    loan = AttributionFactory(date_debut=NOW - timedelta(hours=1))
    response = staff_client.post(
        reverse("loan_return", args=[loan.pk]), {"date_retour_effective": local(NOW - timedelta(hours=2))}
    )
    assert response.context["form"].errors["date_retour_effective"] == [
        "The return cannot be before the start of the loan."
    ]
    loan.refresh_from_db()
    assert loan.is_open


def test_a_return_dated_in_the_future_is_refused_on_the_field(staff_client):
    loan = AttributionFactory(date_debut=NOW - timedelta(hours=1))
    response = staff_client.post(
        reverse("loan_return", args=[loan.pk]), {"date_retour_effective": local(NOW + timedelta(hours=48))}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["date_retour_effective"] == ["The return cannot be in the future."]
    assert "The return cannot be in the future." in response.content.decode()
    loan.refresh_from_db()
    assert loan.is_open


def test_extend_moves_the_due_date_and_reclassifies(staff_client):
    loan = AttributionFactory(date_debut=NOW, date_retour_prevue=NOW + timedelta(hours=3))
    new_due = NOW + timedelta(days=2)
    response = staff_client.post(reverse("loan_extend", args=[loan.pk]), {"date_retour_prevue": local(new_due)})
    assert response.status_code == 302
    loan.refresh_from_db()
    assert loan.date_retour_prevue == new_due and loan.duree == "LONG"


def test_extend_to_the_same_date_says_so_on_the_field(staff_client):
    due = NOW + timedelta(hours=3)
    loan = AttributionFactory(date_debut=NOW, date_retour_prevue=due)
    response = staff_client.post(reverse("loan_extend", args=[loan.pk]), {"date_retour_prevue": local(due)})
    assert response.context["form"].errors["date_retour_prevue"] == ["The new due date is the same as the current one."]


def test_a_time_that_does_not_exist_in_paris_is_a_field_error(staff_client):
    loan = AttributionFactory(date_debut=NOW, date_retour_prevue=NOW + timedelta(hours=3))
    # 29 March 2026, 02:30 does not exist in Paris (clocks jump from 02:00 to 03:00).
    response = staff_client.post(reverse("loan_extend", args=[loan.pk]), {"date_retour_prevue": "2026-03-29T02:30"})
    assert response.status_code == 200
    assert response.context["form"].errors["date_retour_prevue"]


def test_loan_list_filters_and_searches(staff_client):
    late = AttributionFactory(
        materiel__code="LATE-1", date_debut=NOW - timedelta(hours=5), date_retour_prevue=NOW - timedelta(hours=1)
    )
    AttributionFactory(materiel__code="FINE-1", client__name="Zoé")
    returned = AttributionFactory(
        materiel__code="BACK-1", date_debut=NOW - timedelta(hours=5), date_retour_effective=NOW - timedelta(hours=1)
    )

    def codes(**params):
        response = staff_client.get(reverse("loan_list"), params)
        return {loan.materiel.code for loan in response.context["page"]}

    assert codes() == {"LATE-1", "FINE-1"}
    assert codes(state="overdue") == {"LATE-1"}
    assert codes(state="returned") == {"BACK-1"}
    assert codes(state="all", q="zoé") == {"FINE-1"}
    assert codes(state="all", q="back-1") == {"BACK-1"}
    assert codes(state="all", q="LATE-1") == {"LATE-1"}  # an exact code, as a scanner types it
    assert codes(duree="LONG") == set()
    assert codes(sort="bogus", state="bogus") == {"LATE-1", "FINE-1"}
    assert late.pk and returned.pk
