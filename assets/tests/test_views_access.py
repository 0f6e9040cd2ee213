"""Every staff page: anonymous → login, logged-in non-staff → the 403 page, staff → the page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assets.tests.factories import AttributionFactory, ClientFactory, StaffFactory
from notifications.models import Canal, NotificationLog, TypeNotification


@pytest.fixture
def objects(db):
    loan = AttributionFactory()
    log = NotificationLog.objects.create(
        attribution=loan, type_notification=TypeNotification.CREATION, canal=Canal.EMAIL, date_scheduled=loan.date_debut
    )
    return {"loan": loan, "log": log, "client": ClientFactory()}


def staff_pages(objects):
    loan, log, client = objects["loan"], objects["log"], objects["client"]
    return [
        reverse("home"),
        reverse("loan_list"),
        reverse("loan_lend"),
        reverse("lend_preview") + "?code=X",
        reverse("loan_detail", args=[loan.pk]),
        reverse("loan_return", args=[loan.pk]),
        reverse("loan_extend", args=[loan.pk]),
        reverse("materiel_list"),
        reverse("materiel_create"),
        reverse("materiel_edit", args=[loan.materiel_id]),
        reverse("client_list"),
        reverse("client_create"),
        reverse("client_lookup") + "?q=Cl",
        reverse("client_detail", args=[client.pk]),
        reverse("client_edit", args=[client.pk]),
        reverse("notification_log"),
        reverse("notification_export"),
        reverse("delivery_report"),
        reverse("notification_detail", args=[log.pk]),
        reverse("scheduler"),
    ]


POST_ONLY = ["notification_bulk"]


def test_anonymous_is_sent_to_login(client, objects):
    for url in staff_pages(objects) + [reverse("notification_retry", args=[objects["log"].pk])]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_logged_in_non_staff_gets_the_403_page(client, objects):
    client.force_login(StaffFactory(username="visitor", is_staff=False))
    for url in staff_pages(objects):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "not a staff account" in response.content.decode(), url
    response = client.post(reverse("notification_retry", args=[objects["log"].pk]))
    assert response.status_code == 403


def test_staff_sees_every_page(staff_client, objects):
    for url in staff_pages(objects):
        response = staff_client.get(url)
        assert response.status_code == 200, url


def test_unknown_page_shows_the_404_page_without_a_traceback(staff_client, settings):
    settings.DEBUG = False
    response = staff_client.get("/loans/999999/")
    assert response.status_code == 404
    assert (
        "This page does not exist" in response.content.decode()
        or "Cette page n’existe pas" in response.content.decode()
    )
    assert "Traceback" not in response.content.decode()


def test_login_page_logs_a_staff_user_in(client, db):
    StaffFactory(username="marie")
    response = client.post(reverse("login"), {"username": "marie", "password": "s3cret-pass"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_logout_is_a_post(staff_client):
    response = staff_client.post(reverse("logout"))
    assert response.status_code == 302
    assert staff_client.get(reverse("home")).status_code == 302


def test_server_error_page_is_plain_words_without_a_traceback(rf, settings):
    from django.views.defaults import server_error

    settings.LANGUAGE_CODE = "en"
    response = server_error(rf.get("/loans/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side." in html and "Traceback" not in html


def test_pages_load_nothing_from_outside(settings):
    """Closed network: no template pulls a script, stylesheet, font or image from another host."""
    import re

    external = re.compile(r"""(src|href)=["'](https?:)?//""")
    offenders = [
        str(path.relative_to(settings.BASE_DIR))
        for path in (settings.BASE_DIR / "templates").rglob("*.html")
        if "email" not in path.parts and external.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
