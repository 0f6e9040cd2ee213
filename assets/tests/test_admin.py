"""The admin goes through the lending services: same rules, same signals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from assets.models import Attribution, Materiel
from assets.signals import attribution_created, attribution_returned
from assets.tests.factories import ClientFactory, MaterielFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def french(settings):
    """These forms are posted with French date formats, the deployment default."""
    settings.LANGUAGE_CODE = "fr"


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.org", "pw-for-tests-123")
    client.force_login(user)
    return client


def local(dt):
    return timezone.localtime(dt)


def form(materiel, client, start, due):
    return {
        "materiel": materiel.pk,
        "client": client.pk,
        "date_debut_0": local(start).strftime("%d/%m/%Y"),
        "date_debut_1": local(start).strftime("%H:%M:%S"),
        "date_retour_prevue_0": local(due).strftime("%d/%m/%Y"),
        "date_retour_prevue_1": local(due).strftime("%H:%M:%S"),
        "notifications-TOTAL_FORMS": "0",
        "notifications-INITIAL_FORMS": "0",
    }


def test_lending_in_the_admin_uses_the_service(admin_client, django_capture_on_commit_callbacks):
    materiel, borrower = MaterielFactory(), ClientFactory()
    start = timezone.now().replace(microsecond=0)
    fired = []
    attribution_created.connect(receiver := lambda sender, **kw: fired.append(kw["attribution"].pk), weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/assets/attribution/add/", form(materiel, borrower, start, start + timedelta(hours=5))
            )
    finally:
        attribution_created.disconnect(receiver)
    assert response.status_code == 302, response.content.decode()[:2000]
    loan = Attribution.objects.get()
    assert (loan.duree, loan.created_by.username) == ("MOYEN", "boss")
    assert Materiel.objects.get(pk=materiel.pk).state == Materiel.State.LENT
    assert fired == [loan.pk]


def test_admin_shows_the_rule_instead_of_saving_a_second_loan(admin_client):
    materiel = MaterielFactory()
    start = timezone.now().replace(microsecond=0)
    admin_client.post(
        "/admin/assets/attribution/add/", form(materiel, ClientFactory(), start, start + timedelta(hours=2))
    )
    response = admin_client.post(
        "/admin/assets/attribution/add/", form(materiel, ClientFactory(), start, start + timedelta(hours=2))
    )
    assert response.status_code == 200
    assert "est déjà sorti chez" in response.content.decode()
    assert Attribution.objects.count() == 1


def test_mark_returned_action(admin_client, django_capture_on_commit_callbacks):
    materiel = MaterielFactory()
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    admin_client.post(
        "/admin/assets/attribution/add/", form(materiel, ClientFactory(), start, start + timedelta(hours=3))
    )
    loan = Attribution.objects.get()
    fired = []
    attribution_returned.connect(receiver := lambda sender, **kw: fired.append(kw["attribution"].pk), weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post("/admin/assets/attribution/", {"action": "mark_returned", "_selected_action": [loan.pk]})
    finally:
        attribution_returned.disconnect(receiver)
    loan.refresh_from_db()
    assert loan.statut == "RESTITUEE"
    assert fired == [loan.pk]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/assets/materiel/",
        "/admin/assets/client/",
        "/admin/assets/attribution/",
        "/admin/notifications/notificationlog/",
        "/admin/notifications/notificationpreferences/",
        "/admin/notifications/whatsappconfig/",
    ],
)
def test_admin_lists_open_and_search(admin_client, url):
    assert admin_client.get(url, {"q": "x"}).status_code == 200
