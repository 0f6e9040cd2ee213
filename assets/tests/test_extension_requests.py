"""Extension requests: the rules, granted at once or waiting for staff, approved or refused with a reason."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from assets import borrower_links, services
from assets.models import ExtensionRequest
from assets.tests.factories import AttributionFactory, ClientFactory
from notifications.models import NotificationLog, Statut, TypeNotification

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def loan():
    return AttributionFactory(
        client=ClientFactory(name="Alice Martin", email="alice@example.org", language="en"),
        materiel__code="CAM-1",
        date_debut=NOW - timedelta(days=1),
        date_retour_prevue=NOW + timedelta(hours=6),
    )


def test_within_the_rules_a_request_waits_for_staff(loan, settings):
    settings.EXTENSION_REQUIRES_APPROVAL = True
    request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    assert request.statut == ExtensionRequest.Statut.EN_ATTENTE
    assert request.previous_due == NOW + timedelta(hours=6)
    loan.refresh_from_db()
    assert loan.date_retour_prevue == NOW + timedelta(hours=6)  # not moved yet


def test_asking_again_while_one_waits_changes_that_request(loan):
    first = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    second = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=3), source="WHATSAPP")
    assert first.pk == second.pk
    assert ExtensionRequest.objects.get().requested_due == NOW + timedelta(days=3)
    assert ExtensionRequest.objects.get().source == "WHATSAPP"


def test_without_approval_it_is_granted_at_once_through_extend(loan, settings):
    settings.EXTENSION_REQUIRES_APPROVAL = False
    request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    assert request.statut == ExtensionRequest.Statut.ACCORDEE
    loan.refresh_from_db()
    assert loan.date_retour_prevue == NOW + timedelta(days=2)
    assert loan.duree == "LONG"  # `extend` recomputed the class, so the reminders follow


def test_a_request_without_a_time_asks_for_the_default_more(loan, settings):
    settings.EXTENSION_DEFAULT_HOURS = 24
    request = services.request_extension(loan, now=NOW)
    assert request.requested_due == NOW + timedelta(hours=30)


@pytest.mark.parametrize(
    "new_due,code",
    [
        (NOW + timedelta(hours=5), "not_later"),
        (NOW + timedelta(hours=6), "not_later"),
        (NOW + timedelta(days=40), "too_long"),
    ],
)
def test_the_rules_refuse(loan, settings, new_due, code):
    settings.EXTENSION_MAX_TOTAL_DAYS = 30
    with pytest.raises(ValidationError) as refused:
        services.request_extension(loan, now=NOW, new_due=new_due)
    assert code in {e.code for e in refused.value.error_dict["new_due"]}
    assert not ExtensionRequest.objects.exists()


def test_not_when_late_by_more_than_the_setting(settings):
    settings.EXTENSION_REFUSE_WHEN_LATE_HOURS = 24
    late = AttributionFactory(date_debut=NOW - timedelta(days=5), date_retour_prevue=NOW - timedelta(hours=25))
    with pytest.raises(ValidationError) as refused:
        services.request_extension(late, now=NOW, new_due=NOW + timedelta(days=1))
    assert refused.value.code == "too_late"
    a_bit_late = AttributionFactory(date_debut=NOW - timedelta(days=5), date_retour_prevue=NOW - timedelta(hours=23))
    assert services.request_extension(a_bit_late, now=NOW, new_due=NOW + timedelta(days=1)).is_pending


def test_at_most_n_extensions_per_loan(loan, settings):
    settings.EXTENSION_REQUIRES_APPROVAL = False
    settings.EXTENSION_MAX_PER_LOAN = 2
    services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=1))
    services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    with pytest.raises(ValidationError) as refused:
        services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=3))
    assert refused.value.code == "too_many"


def test_a_returned_loan_cannot_be_extended(loan):
    services.record_return(loan, now=NOW)
    with pytest.raises(ValidationError):
        services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=1))


def test_staff_approve_from_the_loan_page_and_the_reminders_are_rearmed(
    staff_client, loan, django_capture_on_commit_callbacks
):
    request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=3))
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert f'id="approve-{request.pk}"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("extension_decide", args=[request.pk]), {"action": "approve"})

    assert response.status_code == 302
    request.refresh_from_db()
    loan.refresh_from_db()
    assert request.statut == ExtensionRequest.Statut.ACCORDEE and request.decided_by.username == "desk"
    assert loan.date_retour_prevue == NOW + timedelta(days=3)
    reminder = NotificationLog.objects.get(attribution=loan, type_notification=TypeNotification.RAPPEL_J_MOINS_1)
    assert reminder.statut == Statut.EN_ATTENTE
    assert reminder.date_scheduled == datetime(2026, 3, 12, 8, 0, tzinfo=PARIS)
    # Deciding twice changes nothing.
    staff_client.post(reverse("extension_decide", args=[request.pk]), {"action": "refuse", "reason": "x"})
    request.refresh_from_db()
    assert request.statut == ExtensionRequest.Statut.ACCORDEE


def test_staff_refuse_with_a_reason_and_the_borrower_is_told_why(
    staff_client, loan, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    assert staff_client.post(reverse("extension_decide", args=[request.pk]), {"action": "refuse"}).status_code == 302
    request.refresh_from_db()
    assert request.is_pending  # no reason, no refusal

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("extension_decide", args=[request.pk]),
            {"action": "refuse", "reason": "Booked by another team from tomorrow."},
        )

    request.refresh_from_db()
    assert request.statut == ExtensionRequest.Statut.REFUSEE
    notice = NotificationLog.objects.get(attribution=loan, type_notification=TypeNotification.PROLONGATION_REFUSEE)
    assert notice.statut == Statut.ENVOYEE and notice.canal == "EMAIL"
    [email] = [m for m in mail.outbox if m.to[0].endswith("alice@example.org>") or m.to[0] == "alice@example.org"]
    assert "Extension refused" in email.subject
    assert "Booked by another team from tomorrow." in email.body
    assert borrower_links.borrower_url(loan) in email.body


def test_a_second_refusal_tells_the_borrower_again(loan, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    for reason in ("First reason.", "Second reason."):
        request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
        with django_capture_on_commit_callbacks(execute=True):
            services.refuse_extension(request, reason=reason, now=NOW)
    assert sum("Second reason." in m.body for m in mail.outbox) == 1
    assert NotificationLog.objects.filter(type_notification=TypeNotification.PROLONGATION_REFUSEE).count() == 1


def test_the_dashboard_lists_the_waiting_requests_in_a_fixed_number_of_queries(
    staff_client, django_assert_max_num_queries
):
    for hours in range(5):
        waiting = AttributionFactory(date_debut=NOW - timedelta(hours=1), date_retour_prevue=NOW + timedelta(hours=5))
        services.request_extension(waiting, now=NOW - timedelta(minutes=hours), new_due=NOW + timedelta(days=1))
    with django_assert_max_num_queries(30) as queries:
        response = staff_client.get(reverse("home"))
    few = len(queries)
    for _ in range(5):
        waiting = AttributionFactory(date_debut=NOW - timedelta(hours=1), date_retour_prevue=NOW + timedelta(hours=5))
        services.request_extension(waiting, now=NOW, new_due=NOW + timedelta(days=1))
    with django_assert_max_num_queries(few):
        response = staff_client.get(reverse("home"))
    assert len(response.context["pending_extensions"]) == 10
    assert response.content.decode().count('data-extension="') == 10


def test_borrower_requests_from_the_page_and_staff_see_it_on_the_dashboard(
    client, staff_client, loan, fresh_borrower_counters
):
    due = (NOW + timedelta(days=1)).astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")
    url = reverse("borrower_extend", args=[borrower_links.make_token(loan)])
    response = client.post(url, {"loan": loan.pk, "new_due": due})
    assert response.status_code == 302 and "done=requested" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert f'id="pending-{loan.pk}"' in page
    assert f'data-extension="{ExtensionRequest.objects.get().pk}"' in staff_client.get(reverse("home")).content.decode()


def test_a_refused_request_shows_why_on_the_page(client, loan, settings, fresh_borrower_counters):
    settings.EXTENSION_MAX_TOTAL_DAYS = 3
    url = reverse("borrower_extend", args=[borrower_links.make_token(loan)])
    response = client.post(url, {"loan": loan.pk, "new_due": "2026-04-30T10:00"})
    assert response.status_code == 400
    assert "cannot last more than 3 days" in response.content.decode()
    assert not ExtensionRequest.objects.exists()


def test_a_request_of_a_loan_returned_meanwhile_is_closed_and_leaves_the_dashboard(staff_client, loan):
    request = services.request_extension(loan, now=NOW, new_due=NOW + timedelta(days=2))
    assert len(staff_client.get(reverse("home")).context["pending_extensions"]) == 1
    services.record_return(loan, now=NOW + timedelta(hours=1))
    assert staff_client.get(reverse("home")).context["pending_extensions"] == []
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert "approve-" not in page
    assert "Closed: the item came back" in page and "Waiting for staff" not in page
    request.refresh_from_db()
    assert (request.statut, request.decided_at) == (ExtensionRequest.Statut.CLOSED, NOW + timedelta(hours=1))
