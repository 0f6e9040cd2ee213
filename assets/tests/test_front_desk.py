"""Scan to return, return from the loan list, the basket, and lend errors all at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from assets.desk_views import BASKET_SESSION_KEY
from assets.models import Attribution, Materiel
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def frozen(settings):
    settings.LANGUAGE_CODE = "en"
    with time_machine.travel(NOW, tick=False):
        yield


def local(dt: datetime) -> str:
    return dt.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def test_a_scanned_code_records_the_return_at_once_and_says_how_late(staff_client):
    loan = AttributionFactory(
        materiel__code="CAM-042",
        client__name="Alice Martin",
        date_debut=NOW - timedelta(hours=5),
        date_retour_prevue=NOW - timedelta(hours=2, minutes=30),
    )
    response = staff_client.post(reverse("scan_return"), {"code": "cam-042"})
    assert response.status_code == 302 and response["Location"] == f"{reverse('scan_return')}?last={loan.pk}"
    loan.refresh_from_db()
    assert loan.date_retour_effective == NOW and Materiel.objects.get(pk=loan.materiel_id).state == "available"

    page = staff_client.get(response["Location"])
    html = page.content.decode()
    assert "Alice Martin" in html and "CAM-042" in html
    assert page.context["late_by"] == timedelta(hours=2, minutes=30)
    assert [row.pk for row in page.context["recent"]] == [loan.pk]


def test_scanning_a_code_that_is_not_out_or_unknown_says_so(staff_client):
    MaterielFactory(code="TRI-1")
    response = staff_client.post(reverse("scan_return"), {"code": "TRI-1"})
    assert response.status_code == 200
    assert response.context["form"].errors["code"] == ["TRI-1 is not out (Available): there is nothing to return."]
    response = staff_client.post(reverse("scan_return"), {"code": "NOPE"})
    assert response.context["form"].errors["code"] == ["No material has the code “NOPE”."]


def test_the_loan_list_returns_a_row_and_comes_back_to_the_list(staff_client):
    loan = AttributionFactory(date_debut=NOW - timedelta(hours=1))
    listing = staff_client.get(reverse("loan_list"))
    assert reverse("loan_return", args=[loan.pk]) in listing.content.decode()
    assert reverse("loan_extend", args=[loan.pk]) in listing.content.decode()
    response = staff_client.post(reverse("loan_return", args=[loan.pk]), {"next": "/loans/?state=overdue"})
    assert response.status_code == 302 and response["Location"] == "/loans/?state=overdue"
    loan.refresh_from_db()
    assert not loan.is_open
    other = AttributionFactory(date_debut=NOW - timedelta(hours=1))
    response = staff_client.post(reverse("loan_return", args=[other.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("loan_detail", args=[other.pk])


def add(http, code: str, **kept):
    return http.post(reverse("basket"), {"action": "add", "code": code, **kept})


def test_a_basket_lends_every_item_to_one_borrower_with_one_due_date(staff_client, staff_user):
    MaterielFactory(code="CAM-1")
    MaterielFactory(code="TRI-2")
    MaterielFactory(code="MIC-3")
    busy = AttributionFactory(materiel__code="CAM-9", client__name="Bob Busy")
    borrower = ClientFactory(name="Carla")
    due = local(NOW + timedelta(days=2))

    assert add(staff_client, "cam-1").status_code == 200
    response = add(staff_client, "TRI-2", client=f"Carla · #{borrower.pk}", date_retour_prevue=due)
    assert 'value="Carla · #' in response.content.decode()  # what was typed below the scan is kept
    assert "already in the basket" in add(staff_client, "CAM-1").context["scan"].errors["code"][0]
    assert "Bob Busy" in add(staff_client, "CAM-9").context["scan"].errors["code"][0]
    assert reverse("loan_return", args=[busy.pk]) in add(staff_client, "CAM-9").content.decode()
    add(staff_client, "MIC-3")
    staff_client.post(reverse("basket"), {"remove": str(Materiel.objects.get(code="MIC-3").pk)})
    assert [item["materiel"].code for item in staff_client.get(reverse("basket")).context["items"]] == [
        "CAM-1",
        "TRI-2",
    ]

    response = staff_client.post(
        reverse("basket"), {"action": "lend", "client": f"Carla · #{borrower.pk}", "date_retour_prevue": due}
    )
    assert response.status_code == 302 and response["Location"] == reverse("client_detail", args=[borrower.pk])
    loans = Attribution.objects.filter(client=borrower).order_by("materiel__code")
    assert [loan.materiel.code for loan in loans] == ["CAM-1", "TRI-2"]
    assert {loan.date_retour_prevue for loan in loans} == {NOW + timedelta(days=2)}
    assert {loan.created_by for loan in loans} == {staff_user}
    assert staff_client.session[BASKET_SESSION_KEY] == []


def test_a_basket_lends_all_or_nothing_and_lists_every_problem(staff_client):
    first = MaterielFactory(code="CAM-1")
    second = MaterielFactory(code="TRI-2")
    borrower = ClientFactory(name="Dan")
    add(staff_client, "CAM-1")
    add(staff_client, "TRI-2")
    AttributionFactory(materiel=second, client__name="Eve")  # lent at another desk meanwhile
    Materiel.objects.filter(pk=first.pk).update(state="out_of_service")

    response = staff_client.post(
        reverse("basket"),
        {"action": "lend", "client": f"Dan · #{borrower.pk}", "date_retour_prevue": local(NOW - timedelta(hours=1))},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["date_retour_prevue"] == ["The due date must be after the start of the loan."]
    problems = [item["problem"] for item in response.context["items"]]
    assert "CAM-1 is out of service" in problems[0] and "already out with Eve" in problems[1]

    response = staff_client.post(
        reverse("basket"),
        {"action": "lend", "client": f"Dan · #{borrower.pk}", "date_retour_prevue": local(NOW + timedelta(hours=5))},
    )
    assert response.status_code == 200
    messages = response.context["form"].non_field_errors()
    assert any("CAM-1 is out of service" in m for m in messages) and any("Eve" in m for m in messages)
    assert not Attribution.objects.filter(client=borrower).exists()


def test_an_empty_basket_cannot_be_lent(staff_client):
    borrower = ClientFactory()
    response = staff_client.post(
        reverse("basket"),
        {"action": "lend", "client": f"x · #{borrower.pk}", "date_retour_prevue": local(NOW + timedelta(hours=5))},
    )
    assert response.context["form"].non_field_errors() == ["Scan at least one item first."]


def test_the_lend_form_shows_every_problem_together(staff_client):
    response = staff_client.post(
        reverse("loan_lend"),
        {"materiel": "NOPE-1", "client": "nobody at all", "date_retour_prevue": local(NOW - timedelta(hours=1))},
    )
    errors = response.context["form"].errors
    assert set(errors) == {"materiel", "client", "date_retour_prevue"}

    AttributionFactory(materiel__code="CAM-7", client__name="Fay")
    mute = ClientFactory(name="Mute", email="", phone="")
    response = staff_client.post(
        reverse("loan_lend"),
        {"materiel": "CAM-7", "client": f"Mute · #{mute.pk}", "date_retour_prevue": local(NOW - timedelta(hours=1))},
    )
    errors = response.context["form"].errors
    assert "already out with Fay" in errors["materiel"][0]
    assert "no email address or phone number" in errors["client"][0]
    assert errors["date_retour_prevue"] == ["The due date must be after the start of the loan."]


def test_a_basket_for_a_borrower_with_overdue_items_warns_then_lends_on_confirmation(staff_client):
    MaterielFactory(code="CAM-1")
    late = ClientFactory(name="Gus")
    AttributionFactory(client=late, date_debut=NOW - timedelta(days=3), date_retour_prevue=NOW - timedelta(days=1))
    add(staff_client, "CAM-1")
    data = {"action": "lend", "client": f"Gus · #{late.pk}", "date_retour_prevue": local(NOW + timedelta(hours=5))}
    response = staff_client.post(reverse("basket"), data)
    assert "Gus has 1 overdue item now." in response.content.decode()
    assert f'name="confirm" value="{late.pk}"' in response.content.decode()
    response = staff_client.post(reverse("basket"), {**data, "confirm": str(late.pk)})
    assert response.status_code == 302
    assert Attribution.objects.filter(client=late, materiel__code="CAM-1").exists()


@pytest.mark.parametrize("value", ["\x00", "CAM\x00-1", "9" * 20, str(2**63), "²", "é" * 10240, "-1", ""])
def test_hostile_posts_to_the_desk_pages_never_answer_500(staff_client, value):
    staff_client.raise_request_exception = False
    MaterielFactory(code="CAM-1")
    borrower = ClientFactory()
    add(staff_client, "CAM-1")
    fine = {"client": f"x · #{borrower.pk}", "date_retour_prevue": local(NOW + timedelta(hours=5))}
    posts = [(reverse("scan_return"), {"code": value})]
    posts += [(reverse("basket"), {"action": "add", "code": value})]
    posts += [(reverse("basket"), {"remove": value}), (reverse("basket"), {"action": value})]
    posts += [(reverse("basket"), {"action": "lend", **fine, field: value}) for field in (*fine, "notes", "confirm")]
    posts += [(reverse("loan_lend"), {"materiel": "CAM-1", **fine, "confirm": value})]
    for url, data in posts:
        assert staff_client.post(url, data).status_code in (200, 302, 400), (url, data)
