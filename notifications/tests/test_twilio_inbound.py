"""Borrowers write back on WhatsApp and SMS: signed fake Twilio inbound webhooks drive STOP, START,
the reminder template's buttons and free text; forged, replayed and flooding requests change nothing.

The requests are signed with the real `twilio.request_validator.RequestValidator` over
PUBLIC_BASE_URL + path, as Twilio signs them. Replies go out through the send path
(eager tasks in tests) with the real `twilio` client against `FakeTwilio`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from assets.tests.factories import AttributionFactory, ClientFactory
from notifications import sending
from notifications.inbound import Inbound, classify, keyword
from notifications.models import (
    Canal,
    InboundMessage,
    NotificationLog,
    NotificationPreferences,
    Statut,
    TypeNotification,
)
from radgestmat.testing.twilio import TWILIO_SID, FakeTwilio, inbound_message, twilio_signature

pytestmark = pytest.mark.django_db

TOKEN = "twilio-auth-token-for-tests-0123"
PUBLIC = "https://radgestmat.example.org"
WEBHOOK = PUBLIC + "/webhooks/twilio/inbound/"
NUMBER = "+33611223344"
WHATSAPP = f"whatsapp:{NUMBER}"


@pytest.fixture
def twilio(settings, redis_db):
    fake = FakeTwilio().up()
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.TWILIO_SMS_FROM = "+15005550006"
    settings.TWILIO_API_BASE_URL = fake.url
    settings.TWILIO_TIMEOUT = 3
    settings.WHATSAPP_ENABLED = True
    settings.SMS_ENABLED = True
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.ALLOWED_HOSTS = ["radgestmat.example.org", "testserver"]
    settings.ORGANISATION_NAME = "Médiathèque"
    for key in redis_db.scan_iter("radgestmat:*inbound:*"):
        redis_db.delete(key)
    yield fake
    for key in redis_db.scan_iter("radgestmat:*inbound:*"):
        redis_db.delete(key)
    fake.down()


@pytest.fixture
def borrower():
    client = ClientFactory(name="Camille Martin", phone=NUMBER, language="fr")
    NotificationPreferences.objects.create(client=client, notifications_whatsapp=True, sms_enabled=True)
    return client


@pytest.fixture
def loan(borrower):
    return AttributionFactory(client=borrower, materiel__code="CAM-042")


def post(http, params, *, signed_for: str | None = WEBHOOK, token: str = TOKEN):
    headers = {}
    if signed_for is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = twilio_signature(signed_for, params, token)
    return http.post(reverse("twilio_inbound_message"), params, **headers)


def deliver(http, django_capture_on_commit_callbacks, params, **kwargs):
    """Post the webhook and run what it enqueued after commit (the reply's send task, eager)."""
    with django_capture_on_commit_callbacks(execute=True):
        response = post(http, params, **kwargs)
    return response


def prefs_of(client) -> NotificationPreferences:
    return NotificationPreferences.objects.get(client=client)


# --- STOP and START --------------------------------------------------------


@pytest.mark.parametrize("word", ["STOP", "stop", "Arrêt", "ARRET", "arret !", "Unsubscribe", "STOPALL", " Stop. "])
def test_a_stop_word_on_whatsapp_switches_whatsapp_off_at_once_and_is_confirmed_once(
    client, django_capture_on_commit_callbacks, twilio, loan, word
):
    response = deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, word))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    prefs = prefs_of(loan.client)
    assert prefs.notifications_whatsapp is False
    assert prefs.sms_enabled is True  # only the channel it came on
    assert [m["To"] for m in twilio.sent] == [WHATSAPP]
    assert "ne recevrez plus nos messages sur WhatsApp" in twilio.sent[0]["Body"]
    assert "START" in twilio.sent[0]["Body"]
    reply = NotificationLog.objects.get(type_notification=TypeNotification.REPONSE)
    assert (reply.canal, reply.statut, reply.attribution_id) == (Canal.WHATSAPP, Statut.ENVOYEE, loan.pk)
    inbound = InboundMessage.objects.get()
    assert (inbound.kind, inbound.reply_id, inbound.attribution_id) == ("STOP", reply.pk, loan.pk)


def test_after_stop_no_reminder_goes_out_on_that_channel(client, django_capture_on_commit_callbacks, twilio, loan):
    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "STOP"))
    reminder = NotificationLog.objects.create(
        attribution=loan, type_notification=TypeNotification.RAPPEL_2H, canal=Canal.WHATSAPP
    )

    assert sending.send_notification(reminder.pk, now=timezone.now()) == Statut.ANNULEE
    assert len(twilio.sent) == 1  # the STOP confirmation only


@pytest.mark.parametrize("word", ["START", "reprendre", "Reprendre !", "UNSTOP"])
def test_a_start_word_switches_the_channel_back_on_confirmed_in_the_borrowers_language(
    client, django_capture_on_commit_callbacks, twilio, loan, word
):
    loan.client.language = "en"
    loan.client.save()
    NotificationPreferences.objects.filter(client=loan.client).update(notifications_whatsapp=False)

    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, word))

    assert prefs_of(loan.client).notifications_whatsapp is True
    assert len(twilio.sent) == 1
    assert twilio.sent[0]["Body"].startswith("Done: you will get our messages on WhatsApp again")


def test_stop_and_start_by_sms_switch_sms_only(client, django_capture_on_commit_callbacks, twilio, loan):
    deliver(client, django_capture_on_commit_callbacks, inbound_message(NUMBER, "ARRÊT"))

    prefs = prefs_of(loan.client)
    assert (prefs.sms_enabled, prefs.notifications_whatsapp) == (False, True)
    assert [m["To"] for m in twilio.sent] == [NUMBER]  # the SMS channel, no "whatsapp:" prefix
    assert "par SMS" in twilio.sent[0]["Body"]

    deliver(client, django_capture_on_commit_callbacks, inbound_message(NUMBER, "START"))

    assert prefs_of(loan.client).sms_enabled is True
    assert len(twilio.sent) == 2


def test_stop_reaches_a_borrower_without_saved_preferences(client, django_capture_on_commit_callbacks, twilio):
    loan = AttributionFactory(client=ClientFactory(phone="+33699887766"))

    deliver(client, django_capture_on_commit_callbacks, inbound_message("+33699887766", "stop"))

    assert prefs_of(loan.client).sms_enabled is False


# --- Template buttons ------------------------------------------------------


def test_the_extend_button_with_a_loan_id_becomes_an_extension_request_on_that_loan(
    client, staff_client, django_capture_on_commit_callbacks, twilio, loan, borrower
):
    other = AttributionFactory(client=borrower)  # the more recent loan: the id in the payload wins
    params = inbound_message(WHATSAPP, "Prolonger", button=f"EXTEND:{loan.pk}")

    deliver(client, django_capture_on_commit_callbacks, params)

    inbound = InboundMessage.objects.get()
    assert (inbound.kind, inbound.attribution_id, inbound.button_payload) == ("EXTEND", loan.pk, f"EXTEND:{loan.pk}")
    assert other.inbound_messages.count() == 0
    assert "demande de prolongation pour *CAM-042*" in twilio.sent[0]["Body"]
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert 'data-kind="EXTEND"' in page and "Asks for an extension" in page
    dashboard = staff_client.get(reverse("home")).content.decode()
    assert 'id="borrower-requests"' in dashboard and "CAM-042" in dashboard
    # ...and an extension request of the lending core, waiting for staff like one from the borrower page.
    from assets.models import ExtensionRequest

    request = ExtensionRequest.objects.get()
    assert (request.attribution_id, request.source, request.statut) == (loan.pk, "WHATSAPP", "EN_ATTENTE")
    assert f'id="approve-{request.pk}"' in page


def test_a_bare_button_is_about_the_loan_of_the_message_it_answers(
    client, django_capture_on_commit_callbacks, twilio, loan, borrower
):
    reminded = AttributionFactory(client=borrower, materiel__code="PRJ-007")
    reminder = NotificationLog.objects.create(
        attribution=reminded,
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.WHATSAPP,
        statut=Statut.ENVOYEE,
        date_envoi=timezone.now() - timedelta(hours=1),
        destinataire=NUMBER,
        provider_message_id="SM" + "7" * 32,
    )

    params = inbound_message(WHATSAPP, "Déjà rendu", button="RETURNED", replied_to=reminder.provider_message_id)
    deliver(client, django_capture_on_commit_callbacks, params)

    inbound = InboundMessage.objects.get()
    assert (inbound.kind, inbound.attribution_id) == ("RETURNED", reminded.pk)
    assert "vous avez rendu *PRJ-007*" in twilio.sent[0]["Body"]


def test_the_returned_button_is_a_note_for_staff_on_the_loan_page_and_the_dashboard(
    client, staff_client, django_capture_on_commit_callbacks, twilio, loan
):
    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "Déjà rendu", button="RETURNED"))

    loan.refresh_from_db()
    assert loan.is_open  # staff record the return when the material is back; the borrower's word is a note
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert 'data-kind="RETURNED"' in page and "Says it was returned" in page
    dashboard = staff_client.get(reverse("home")).content.decode()
    assert 'data-kind="RETURNED"' in dashboard


def test_staff_mark_a_borrowers_note_as_dealt_with_and_it_leaves_the_dashboard_not_the_loan_page(
    client, staff_client, django_capture_on_commit_callbacks, twilio, loan
):
    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "Déjà rendu", button="RETURNED"))
    note = InboundMessage.objects.get(kind="RETURNED")
    dashboard = staff_client.get(reverse("home")).content.decode()
    assert f'id="handled-{note.pk}"' in dashboard

    response = staff_client.post(reverse("inbound_handled", args=[note.pk]), {"next": reverse("home")})

    assert response.status_code == 302 and response.url == reverse("home")
    note.refresh_from_db()
    assert note.handled_at is not None and note.handled_by.username == "desk"
    dashboard = staff_client.get(reverse("home")).content.decode()
    assert 'id="borrower-requests"' not in dashboard
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert 'data-kind="RETURNED"' in page  # the loan's timeline keeps what the borrower said
    # Twice (two staff at once, a double click): the second changes nothing.
    staff_client.post(reverse("inbound_handled", args=[note.pk]))
    assert InboundMessage.objects.get(pk=note.pk).handled_at == note.handled_at


def test_a_button_naming_someone_elses_loan_stays_on_the_senders_loan(
    client, django_capture_on_commit_callbacks, twilio, loan
):
    stranger = AttributionFactory(client=ClientFactory(phone="+33655554444"))

    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "x", button=f"EXTEND:{stranger.pk}"))

    assert InboundMessage.objects.get().attribution_id == loan.pk
    assert stranger.inbound_messages.count() == 0


# --- Free text -------------------------------------------------------------


def test_free_text_lands_on_the_loan_of_the_last_message_sent_and_is_acknowledged(
    client, staff_client, django_capture_on_commit_callbacks, twilio, loan, borrower
):
    AttributionFactory(client=borrower)  # more recent, but we last wrote about `loan`
    NotificationLog.objects.create(
        attribution=loan,
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.SMS,
        statut=Statut.ENVOYEE,
        date_envoi=timezone.now(),
        destinataire=NUMBER,
    )
    text = "Je le rapporte demain matin, <b>désolé</b> !"

    deliver(client, django_capture_on_commit_callbacks, inbound_message(NUMBER, text))

    inbound = InboundMessage.objects.get()
    assert (inbound.kind, inbound.attribution_id, inbound.body, inbound.canal) == ("TEXT", loan.pk, text, Canal.SMS)
    assert [m["To"] for m in twilio.sent] == [NUMBER]
    assert "a bien reçu votre message au sujet de CAM-042" in twilio.sent[0]["Body"]
    page = staff_client.get(reverse("loan_detail", args=[loan.pk])).content.decode()
    assert "Je le rapporte demain matin, &lt;b&gt;désolé&lt;/b&gt; !" in page


def test_free_text_without_a_recent_message_lands_on_the_most_recent_open_loan(
    client, django_capture_on_commit_callbacks, twilio, borrower
):
    older = AttributionFactory(client=borrower, date_debut=timezone.now() - timedelta(days=2))
    newer = AttributionFactory(client=borrower, date_debut=timezone.now() - timedelta(hours=1))

    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "Bonjour"))

    assert InboundMessage.objects.get().attribution_id == newer.pk != older.pk


def test_the_whatsapp_acknowledgement_is_not_sent_after_the_24_hour_window(client, twilio, loan):
    received = timezone.now()
    with time_machine.travel(received, tick=False):
        post(client, inbound_message(WHATSAPP, "Merci"))  # the send task is not run (no commit callbacks)
    reply = InboundMessage.objects.get().reply

    with time_machine.travel(received + timedelta(hours=24, minutes=1), tick=False):
        outcome = sending.send_notification(reply.pk, now=timezone.now())

    reply.refresh_from_db()
    assert outcome == Statut.ANNULEE
    assert "24-hour window" in reply.erreur_message
    assert twilio.sent == []


def test_the_acknowledgement_goes_out_just_within_the_window(client, twilio, loan):
    received = timezone.now()
    with time_machine.travel(received, tick=False):
        post(client, inbound_message(WHATSAPP, "Merci"))
    reply = InboundMessage.objects.get().reply

    with time_machine.travel(received + timedelta(hours=23, minutes=59), tick=False):
        assert sending.send_notification(reply.pk, now=timezone.now()) == Statut.ENVOYEE
    assert len(twilio.sent) == 1


def test_an_sms_acknowledgement_has_no_window(client, twilio, loan):
    received = timezone.now()
    with time_machine.travel(received, tick=False):
        post(client, inbound_message(NUMBER, "Merci"))
    reply = InboundMessage.objects.get().reply

    with time_machine.travel(received + timedelta(hours=30), tick=False):
        assert sending.send_notification(reply.pk, now=timezone.now()) == Statut.ENVOYEE


def test_a_failed_reply_does_not_fall_back_to_another_channel(client, django_capture_on_commit_callbacks, twilio, loan):
    twilio.fail_for(60, 400, 63016, "Outside the window")

    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "Merci"))

    reply = NotificationLog.objects.get(type_notification=TypeNotification.REPONSE)
    assert reply.statut == Statut.ECHEC_PERMANENT
    assert NotificationLog.objects.count() == 1


# --- Unknown numbers, forgeries, replays, floods --------------------------


def test_an_unknown_number_gets_nothing_and_is_logged_masked(
    client, django_capture_on_commit_callbacks, twilio, loan, caplog
):
    with caplog.at_level(logging.INFO, logger="radgestmat.notifications"):
        response = deliver(client, django_capture_on_commit_callbacks, inbound_message("whatsapp:+33781234599", "STOP"))

    assert response.status_code == 200
    assert InboundMessage.objects.count() == 0 and twilio.sent == []
    assert prefs_of(loan.client).notifications_whatsapp is True
    assert "+33*******99" in caplog.text
    assert "+33781234599" not in caplog.text


@pytest.mark.parametrize(
    "how", ["unsigned", "forged", "signed with another token", "signed for another URL", "tampered after signing"]
)
def test_a_forged_request_is_refused_and_changes_nothing(client, django_capture_on_commit_callbacks, twilio, loan, how):
    params = inbound_message(WHATSAPP, "STOP")
    if how == "unsigned":
        kwargs = {"signed_for": None}
    elif how == "forged":
        kwargs = {"signed_for": None}
        client.defaults["HTTP_X_TWILIO_SIGNATURE"] = "bm90IGEgc2lnbmF0dXJl"
    elif how == "signed with another token":
        kwargs = {"token": "another-token"}
    elif how == "signed for another URL":
        kwargs = {"signed_for": PUBLIC + "/webhooks/twilio/status/"}
    else:
        signature = twilio_signature(WEBHOOK, params, TOKEN)
        client.defaults["HTTP_X_TWILIO_SIGNATURE"] = signature
        params = {**params, "Body": "START"}
        kwargs = {"signed_for": None}

    response = deliver(client, django_capture_on_commit_callbacks, params, **kwargs)

    assert response.status_code == 403
    assert prefs_of(loan.client).notifications_whatsapp is True
    assert InboundMessage.objects.count() == 0 and NotificationLog.objects.count() == 0 and twilio.sent == []


def test_a_replayed_webhook_changes_nothing_the_second_time(client, django_capture_on_commit_callbacks, twilio, loan):
    params = inbound_message(WHATSAPP, "STOP")
    deliver(client, django_capture_on_commit_callbacks, params)
    NotificationPreferences.objects.filter(client=loan.client).update(notifications_whatsapp=True)  # staff, later

    response = deliver(client, django_capture_on_commit_callbacks, params)

    assert response.status_code == 200
    assert prefs_of(loan.client).notifications_whatsapp is True
    assert InboundMessage.objects.count() == 1
    assert len(twilio.sent) == 1


def test_messages_past_the_rate_limit_are_ignored_but_stop_is_still_honoured(
    client, django_capture_on_commit_callbacks, twilio, loan, settings
):
    settings.INBOUND_RATE_LIMIT_PER_HOUR = 2
    for text in ("un", "deux", "trois"):
        deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, text))

    assert list(InboundMessage.objects.order_by("id").values_list("body", flat=True)) == ["un", "deux"]
    assert len(twilio.sent) == 2

    deliver(client, django_capture_on_commit_callbacks, inbound_message(WHATSAPP, "STOP"))

    assert prefs_of(loan.client).notifications_whatsapp is False
    assert len(twilio.sent) == 2  # no confirmation past the limit
    assert InboundMessage.objects.filter(kind="STOP", reply__isnull=True).count() == 1  # recorded: a replay acts never
    other = ClientFactory(phone="+33622223333")
    AttributionFactory(client=other)
    deliver(client, django_capture_on_commit_callbacks, inbound_message("+33622223333", "Bonjour"))
    assert InboundMessage.objects.filter(client=other).count() == 1  # the limit is per number


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"MessageSid": "SMx"},
        {"MessageSid": "SMx", "From": "not a number"},
        {"MessageSid": "SMx" * 40, "From": WHATSAPP},
        {"MessageSid": "SMx", "From": WHATSAPP, "ButtonPayload": "EXTEND:99999999999999999999"},
        {"MessageSid": "SMy", "From": WHATSAPP, "ButtonPayload": "EXTEND:abc", "Body": "\x00\u202e"},
        {"MessageSid": "SMz", "From": WHATSAPP, "ButtonPayload": "RETURNED:²"},
        {"MessageSid": "SMw", "From": WHATSAPP, "ButtonPayload": "EXTEND:-1"},
    ],
)
def test_odd_but_signed_requests_never_answer_500(client, twilio, loan, params):
    assert post(client, params).status_code == 200


# --- The keyword rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "word"),
    [("Arrêt", "ARRET"), ("arrêt !", "ARRET"), ("opt-out", "OPTOUT"), ("stop please", ""), ("", ""), ("  ", "")],
)
def test_keyword(text, word):
    assert keyword(text) == word


@pytest.mark.parametrize(
    ("payload", "body", "expected"),
    [
        ("EXTEND", "Prolonger", ("EXTEND", None)),
        ("extend:42", "Prolonger", ("EXTEND", 42)),
        ("RETURNED:7", "Déjà rendu", ("RETURNED", 7)),
        ("SOMETHING", "stop", ("STOP", None)),
        ("", "Stop the reminders please", ("TEXT", None)),
    ],
)
def test_classify(payload, body, expected):
    message = Inbound(message_sid="SM1", canal=Canal.WHATSAPP, number=NUMBER, body=body, button_payload=payload)
    assert classify(message) == expected


def test_the_reply_goes_to_the_number_that_wrote(client, django_capture_on_commit_callbacks, twilio, loan):
    NotificationPreferences.objects.filter(client=loan.client).update(phone_number="+33687654321")

    deliver(client, django_capture_on_commit_callbacks, inbound_message(NUMBER, "Bonjour"))

    assert [m["To"] for m in twilio.sent] == [NUMBER]


def test_control_characters_in_the_text_are_dropped_before_it_is_stored(client, twilio, loan):
    post(client, inbound_message(WHATSAPP, "Bon\x00jour\u202e\x1b\nà demain"))

    assert InboundMessage.objects.get().body == "Bonjour\u202e\nà demain"


def test_two_replies_in_the_same_slot_go_out_as_two_messages(client, twilio, loan, settings):
    settings.DIGESTS_ENABLED = True
    settings.DIGEST_WINDOW_MINUTES = 60
    post(client, inbound_message(WHATSAPP, "STOP"))
    post(client, inbound_message(WHATSAPP, "START"))
    first, second = (message.reply for message in InboundMessage.objects.order_by("id"))

    assert sending.send_notification(first.pk, now=timezone.now()) == Statut.ENVOYEE
    assert sending.send_notification(second.pk, now=timezone.now()) == Statut.ENVOYEE
    assert len(twilio.sent) == 2
    assert twilio.sent[0]["Body"].startswith("C'est noté : vous ne recevrez plus nos messages")
    assert twilio.sent[1]["Body"].startswith("C'est noté : vous recevez à nouveau nos messages")
