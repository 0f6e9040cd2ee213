"""Each loan keeps its history (who changed what, when) and a limit on extensions, staff included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from assets import services
from assets.models import LoanEvent
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory

pytestmark = pytest.mark.django_db


def lent(now, by=None):
    return services.lend(
        materiel=MaterielFactory(), client=ClientFactory(), due=now + timedelta(hours=3), now=now, by=by, notes="bag"
    )


def test_lend_extend_note_and_return_each_leave_an_event_with_who_and_the_dates():
    now = timezone.now()
    desk = StaffFactory(username="desk")
    loan = lent(now, by=desk)
    first_due = loan.date_retour_prevue
    services.extend(loan, new_due=first_due + timedelta(days=1), now=now + timedelta(minutes=5), by=desk)
    services.add_note(loan, text="Scratch on the lens", now=now + timedelta(minutes=6), by=desk)
    services.record_return(loan, now=now + timedelta(minutes=10), by=desk)

    events = list(LoanEvent.objects.filter(attribution=loan).order_by("at", "id"))

    assert [e.kind for e in events] == ["LENT", "EXTENDED", "NOTE", "RETURNED"]
    assert all(e.by == desk for e in events)
    assert (events[1].old_due, events[1].new_due) == (first_due, first_due + timedelta(days=1))
    assert events[0].note == "bag" and events[2].note == "Scratch on the lens"
    assert events[3].at == now + timedelta(minutes=10)


def test_a_refused_extension_leaves_no_event():
    now = timezone.now()
    loan = lent(now)
    with pytest.raises(ValidationError):
        services.extend(loan, new_due=loan.date_retour_prevue, now=now)
    assert not LoanEvent.objects.filter(attribution=loan, kind="EXTENDED").exists()


def test_staff_cannot_extend_past_the_limit_but_may_bring_the_date_forward(settings):
    settings.EXTENSION_MAX_PER_LOAN = 2
    now = timezone.now()
    desk = StaffFactory(username="desk")
    loan = lent(now, by=desk)
    for _day in (1, 2):
        services.extend(loan, new_due=loan.date_retour_prevue + timedelta(days=1), now=now, by=desk)
        loan.refresh_from_db()

    with pytest.raises(ValidationError) as refused:
        services.extend(loan, new_due=loan.date_retour_prevue + timedelta(days=1), now=now, by=desk)
    assert refused.value.code == "extension_limit"
    services.extend(loan, new_due=loan.date_retour_prevue - timedelta(hours=1), now=now, by=desk)


def test_a_user_with_the_permission_extends_beyond_the_limit(settings):
    settings.EXTENSION_MAX_PER_LOAN = 0
    now = timezone.now()
    manager = StaffFactory(username="manager")
    manager.user_permissions.add(Permission.objects.get(codename="extend_beyond_limit"))
    loan = lent(now)
    with pytest.raises(ValidationError):
        services.extend(loan, new_due=loan.date_retour_prevue + timedelta(days=1), now=now, by=StaffFactory())

    services.extend(loan, new_due=loan.date_retour_prevue + timedelta(days=1), now=now, by=manager)


def test_the_loan_page_shows_the_history_and_the_extension_count(staff_client, staff_user, settings):
    settings.LANGUAGE_CODE = "en"
    now = timezone.now()
    loan = lent(now, by=staff_user)
    services.extend(loan, new_due=loan.date_retour_prevue + timedelta(days=1), now=now, by=staff_user)

    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()

    assert "1 extension of 3 allowed" in page
    assert 'data-kind="EXTENDED"' in page and "desk" in page


def test_the_extend_page_refuses_past_the_limit_with_the_reason(staff_client, staff_user, settings):
    settings.LANGUAGE_CODE = "en"
    settings.EXTENSION_MAX_PER_LOAN = 0
    loan = lent(timezone.now(), by=staff_user)
    new_due = timezone.localtime(loan.date_retour_prevue + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    response = staff_client.post(reverse("loan_extend", args=[loan.pk]), {"date_retour_prevue": new_due})

    assert response.status_code == 200
    assert "the most allowed (0)" in response.content.decode()


def test_a_note_is_added_from_the_loan_page(staff_client, staff_user):
    loan = lent(timezone.now())
    response = staff_client.post(reverse("loan_note", args=[loan.pk]), {"note": "Called the borrower"})

    assert response.status_code == 302
    assert LoanEvent.objects.get(attribution=loan, kind="NOTE").by == staff_user
    assert staff_client.post(reverse("loan_note", args=[loan.pk]), {"note": "  "}).status_code == 302
    assert LoanEvent.objects.filter(attribution=loan, kind="NOTE").count() == 1
