"""Who the borrower pages open for: the holder of a valid link, for their own loans only.

Anonymous visitors, forged tokens, a token of another purpose, a token of another borrower's loan,
a revoked or expired token, hostile values: none of them sees or changes a loan. CSRF is checked
on the page's POSTs; requests are counted per link and per address in the real Redis cache.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client as HttpClient
from django.urls import reverse

from assets import borrower_links, services
from assets.models import Attribution, ExtensionRequest
from assets.tests.factories import AttributionFactory, ClientFactory
from notifications.models import NotificationPreferences

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def fresh_counters(fresh_borrower_counters):
    yield


@pytest.fixture
def loan():
    return AttributionFactory(
        client=ClientFactory(name="Alice Martin", language="en"),
        materiel__code="CAM-1",
        date_debut=NOW - timedelta(hours=2),
        date_retour_prevue=NOW + timedelta(hours=6),
    )


@pytest.fixture
def other_loan():
    return AttributionFactory(
        client=ClientFactory(name="Bruno Secret", language="fr"),
        materiel__code="SECRET-9",
        date_debut=NOW - timedelta(hours=2),
        date_retour_prevue=NOW + timedelta(hours=5),
    )


def page_url(attribution, name="borrower_page", purpose=borrower_links.PAGE):
    return reverse(name, args=[borrower_links.make_token(attribution, purpose)])


def test_the_link_opens_the_borrowers_own_open_loans_and_nothing_else(client, loan, other_loan):
    second = AttributionFactory(client=loan.client, materiel__code="MIC-2", date_retour_prevue=NOW + timedelta(days=2))
    response = client.get(page_url(loan))
    body = response.content.decode()
    assert response.status_code == 200
    assert "CAM-1" in body and "MIC-2" in body
    assert "SECRET-9" not in body and "Bruno" not in body
    assert response["Cache-Control"] == "no-store, private"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Content-Language"] == "en"
    assert "6 h 00 left" in body  # time left, in the borrower's language
    assert second.pk


def test_the_page_speaks_the_borrowers_language(client, other_loan):
    body = client.get(page_url(other_loan)).content.decode()
    assert "Vos emprunts" in body and "Demander la prolongation" in body


@pytest.mark.parametrize(
    "token",
    ["x", "WzEsMF0.forged", "A" * 5000, "..", "WzEsMF0"],
    ids=["short", "forged-signature", "very-long", "dots", "unsigned"],
)
def test_a_forged_token_opens_nothing(client, loan, token):
    for name in ("borrower_page", "borrower_extend", "borrower_preferences", "borrower_unsubscribe"):
        method = client.get if name in ("borrower_page", "borrower_unsubscribe") else client.post
        response = method(reverse(name, args=[token]))
        assert response.status_code == 404, name
        assert "CAM-1" not in response.content.decode()


def test_a_token_edited_to_name_another_loan_fails_its_signature(client, loan, other_loan):
    token = borrower_links.make_token(loan)
    payload, signature = token.split(".", 1)
    forged_payload = borrower_links.make_token(other_loan).split(".", 1)[0]
    assert client.get(reverse("borrower_page", args=[f"{forged_payload}.{signature}"])).status_code == 404
    assert payload != forged_payload


def test_tokens_are_single_purpose(client, loan):
    unsubscribe_token = borrower_links.make_token(loan, borrower_links.UNSUBSCRIBE)
    assert client.get(reverse("borrower_page", args=[unsubscribe_token])).status_code == 404
    page_token = borrower_links.make_token(loan, borrower_links.PAGE)
    assert client.post(reverse("borrower_unsubscribe", args=[page_token])).status_code == 404
    assert not NotificationPreferences.objects.exists()


def test_a_token_holder_cannot_extend_another_borrowers_loan(client, loan, other_loan):
    response = client.post(
        page_url(loan, "borrower_extend"),
        {"loan": other_loan.pk, "new_due": (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 404
    assert "SECRET-9" not in response.content.decode()
    assert not ExtensionRequest.objects.exists()
    other_loan.refresh_from_db()
    assert other_loan.date_retour_prevue == NOW + timedelta(hours=5)


def test_a_token_holder_changes_only_their_own_preferences(client, loan, other_loan):
    client.post(page_url(loan, "borrower_preferences"), {"notifications_email": "on"})
    assert list(NotificationPreferences.objects.values_list("client_id", flat=True)) == [loan.client_id]


def test_a_revoked_link_opens_nothing_and_the_new_one_works(client, loan):
    old = page_url(loan)
    services.revoke_borrower_link(loan)
    response = client.get(old)
    assert response.status_code == 410
    assert "CAM-1" not in response.content.decode()
    assert client.post(old.replace("/b/", "/b/") + "extend/", {"loan": loan.pk}).status_code == 410
    assert client.get(page_url(loan)).status_code == 200


def test_staff_revoke_the_link_from_the_loan_page(staff_client, loan):
    old = page_url(loan)
    response = staff_client.post(reverse("loan_revoke_link", args=[loan.pk]))
    assert response.status_code == 302
    assert HttpClient().get(old).status_code == 410


def test_the_link_lasts_a_while_after_the_return_then_expires(client, loan, settings):
    settings.BORROWER_LINK_DAYS_AFTER_RETURN = 7
    url = page_url(loan)
    services.record_return(loan, now=NOW)
    with time_machine.travel(NOW + timedelta(days=6, hours=23), tick=False):
        response = client.get(url)
        assert response.status_code == 200
        assert "Returned" in response.content.decode()
        assert "extend-" not in response.content.decode()  # nothing left to extend
    with time_machine.travel(NOW + timedelta(days=7), tick=False):
        response = client.get(url)
        assert response.status_code == 410
        assert "CAM-1" not in response.content.decode()
        assert client.post(page_url(loan, "borrower_preferences"), {}).status_code == 410
        assert client.post(page_url(loan, "borrower_unsubscribe", borrower_links.UNSUBSCRIBE)).status_code == 410


def test_a_deleted_loans_token_opens_nothing(client, loan):
    url = page_url(loan)
    Attribution.objects.filter(pk=loan.pk).delete()
    assert client.get(url).status_code == 404


def test_every_page_post_needs_the_csrf_token(loan):
    browser = HttpClient(enforce_csrf_checks=True)
    due = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert browser.post(page_url(loan, "borrower_extend"), {"loan": loan.pk, "new_due": due}).status_code == 403
    assert browser.post(page_url(loan, "borrower_preferences"), {"notifications_email": "on"}).status_code == 403
    assert not ExtensionRequest.objects.exists() and not NotificationPreferences.objects.exists()
    # With the token the page gave out, the same POST goes through.
    browser.get(page_url(loan))
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(
        page_url(loan, "borrower_extend"), {"loan": loan.pk, "new_due": due, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert ExtensionRequest.objects.get().statut == ExtensionRequest.Statut.EN_ATTENTE


def test_the_one_click_unsubscribe_takes_a_post_without_cookies(loan):
    """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click, with no cookie and no CSRF token."""
    mail_client = HttpClient(enforce_csrf_checks=True)
    url = page_url(loan, "borrower_unsubscribe", borrower_links.UNSUBSCRIBE)
    assert mail_client.get(url).status_code == 200
    assert not NotificationPreferences.objects.exists()  # a GET (a link scanner) changes nothing
    response = mail_client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    prefs = NotificationPreferences.objects.get(client=loan.client)
    assert not (prefs.rappel_2h_avant or prefs.rappel_j_moins_2 or prefs.rappel_j_moins_1 or prefs.rappel_final)
    assert prefs.notifications_email  # the channel stays: overdue alerts and receipts still go out


def test_requests_are_limited_per_link(client, loan, settings):
    settings.BORROWER_RATE_LIMIT_PER_TOKEN = 3
    url = page_url(loan)
    assert [client.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    # Another link from the same address still works: that limit is per link.
    other = AttributionFactory(client=loan.client, date_retour_prevue=NOW + timedelta(days=1))
    assert client.get(page_url(other)).status_code == 200


def test_requests_are_limited_per_address_whatever_the_token(client, loan, settings):
    """GIVEN one address trying token after token, THEN it is stopped, valid token or not."""
    settings.BORROWER_RATE_LIMIT_PER_IP = 5
    statuses = [client.get(reverse("borrower_page", args=[f"guess{i}"])).status_code for i in range(5)]
    assert statuses == [404] * 5
    response = client.get(page_url(loan))
    assert response.status_code == 429
    assert "CAM-1" not in response.content.decode()
    other_address = HttpClient(REMOTE_ADDR="198.51.100.7")
    assert other_address.get(page_url(loan)).status_code == 200


HOSTILE = ["\x00", "9" * 20, str(2**63), "²", "é" * 10240, "-1", "", "9999-12-31", "0001-01-01T00:00"]


def test_hostile_values_never_make_a_server_error(client, loan, settings):
    settings.BORROWER_RATE_LIMIT_PER_TOKEN = settings.BORROWER_RATE_LIMIT_PER_IP = 10_000
    client.raise_request_exception = False
    wrong = []
    for value in HOSTILE:
        cases = [
            ("GET", page_url(loan), {"done": value}),
            ("POST", page_url(loan, "borrower_extend"), {"loan": value, "new_due": "2026-03-11T10:00"}),
            ("POST", page_url(loan, "borrower_extend"), {"loan": loan.pk, "new_due": value}),
            ("POST", page_url(loan, "borrower_preferences"), {"notifications_email": value, "sms_enabled": value}),
            ("POST", page_url(loan, "borrower_unsubscribe", borrower_links.UNSUBSCRIBE), {"x": value}),
        ]
        for method, url, data in cases:
            response = (client.post if method == "POST" else client.get)(url, data)
            if response.status_code not in (200, 302, 400, 404):
                wrong.append(f"{value[:10]!r}: {method} {url} {data!r:.60} -> {response.status_code}")
    assert wrong == []


def test_the_page_costs_the_same_queries_for_one_loan_or_many(client, loan, django_assert_max_num_queries):
    client.get(page_url(loan))  # warm up: the session-less CSRF cookie, content types
    with django_assert_max_num_queries(20) as one:
        client.get(page_url(loan))
    for n in range(8):
        other = AttributionFactory(client=loan.client, date_retour_prevue=NOW + timedelta(days=1, hours=n))
        services.request_extension(other, now=NOW, new_due=NOW + timedelta(days=2))
    with django_assert_max_num_queries(len(one)):
        response = client.get(page_url(loan))
    assert response.content.decode().count('class="loan-card"') == 9


def test_the_page_shows_the_return_desk_and_hours_when_set(client, loan, settings):
    settings.ORGANISATION_RETURN_DESK = "Building B, ground floor"
    settings.ORGANISATION_OPENING_HOURS = "Mon-Fri 9:00-17:00"
    body = client.get(page_url(loan)).content.decode()
    assert "Building B, ground floor" in body and "Mon-Fri 9:00-17:00" in body
