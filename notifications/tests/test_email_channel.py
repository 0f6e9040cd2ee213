"""Email over real SMTP (aiosmtpd): what the borrower receives, and how SMTP failures are recorded."""

from __future__ import annotations

import pytest
from django.utils import timezone

from notifications.exceptions import RetryLater
from notifications.models import CodeErreur, NotificationLog, Statut
from notifications.sending import send_notification
from radgestmat.testing.net import free_port

from .conftest import make_log

pytestmark = pytest.mark.django_db


def send(log):
    return send_notification(log.pk, now=timezone.now())


def test_it_sends_a_multipart_email_in_french(smtp_sink):
    log = make_log("CREATION", "EMAIL", name="Camille Martin", email="camille@example.org", language="fr")

    assert send(log) == Statut.ENVOYEE

    [message] = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["camille@example.org"]
    assert message["To"] == "Camille Martin <camille@example.org>"
    assert message["Reply-To"] == "accueil@example.org"
    assert message["From"] == "RadGestMat <pret@example.org>"
    # A long encoded subject is folded; the unfolded value may keep the fold's leading space.
    assert message["Subject"].lstrip().startswith("Prêt confirmé : ")
    assert log.attribution.materiel.name in message["Subject"]  # the name: codes mean nothing to a borrower
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Bonjour Camille Martin" in text
    assert "À rendre au plus tard le" in text
    assert "<p>Bonjour Camille Martin,</p>" in html
    assert f"Matériel : {log.attribution.materiel.name} ({log.attribution.materiel.code})" in text
    assert "Temps restant : 2 h 59 min" in text or "Temps restant : 3 h" in text
    assert "<th>Temps restant</th>" in html
    assert 'name="viewport"' in html
    log.refresh_from_db()
    assert log.statut == Statut.ENVOYEE
    assert log.nb_tentatives == 1
    assert log.destinataire == "camille@example.org"
    assert log.provider_message_id and log.provider_message_id in message["Message-ID"]
    assert log.date_envoi is not None


def test_it_writes_in_english_for_an_english_client(smtp_sink):
    log = make_log("RETARD", "EMAIL", language="en")
    log.attribution.date_retour_prevue = timezone.now() - timezone.timedelta(hours=5)
    log.attribution.date_debut = timezone.now() - timezone.timedelta(hours=6)
    log.attribution.save()

    send(log)

    [message] = smtp_sink.messages
    assert message["Subject"].startswith("Overdue: ")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "it is 5 h late" in text
    assert "Late by: 5 h" in text
    assert '<td class="alert">5 h</td>' in message.get_body(preferencelist=("html",)).get_content()


def test_it_reuses_one_smtp_connection_for_several_messages(smtp_sink):
    for _ in range(3):
        send(make_log("CREATION", "EMAIL"))

    assert len(smtp_sink.messages) == 3
    assert smtp_sink.sessions == 1


def test_it_reconnects_when_the_server_dropped_the_connection(smtp_sink):
    send(make_log("CREATION", "EMAIL"))
    # The server goes away and comes back (restart, idle timeout): the kept connection is dead.
    smtp_sink.restart()

    assert send(make_log("CREATION", "EMAIL")) == Statut.ENVOYEE

    assert len(smtp_sink.messages) == 2
    assert smtp_sink.sessions == 2


def test_a_4xx_answer_is_recorded_and_retried(smtp_sink):
    smtp_sink.rcpt_reply = "451 4.3.0 Mailbox busy, try later"
    log = make_log("CREATION", "EMAIL")

    with pytest.raises(RetryLater) as retry:
        send(log)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC
    assert log.nb_tentatives == 1
    assert "451" in log.erreur_message
    assert retry.value.retry_in >= 60
    assert log.date_tentative_prochaine > timezone.now() + timezone.timedelta(seconds=59)
    assert smtp_sink.messages == []


def test_the_third_transient_failure_is_permanent(smtp_sink):
    smtp_sink.rcpt_reply = "421 4.7.0 Too many connections"
    log = make_log("CREATION", "EMAIL")
    for _ in range(2):
        with pytest.raises(RetryLater):
            send(log)

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.nb_tentatives == 3
    assert log.reason_text.startswith("Gave up after 3 attempts")
    assert log.erreur_code == CodeErreur.PROVIDER_UNAVAILABLE  # the cause of the last transient failure is kept


def test_a_5xx_answer_fails_permanently_at_once(smtp_sink):
    smtp_sink.rcpt_reply = "550 5.1.1 No such user here"
    log = make_log("CREATION", "EMAIL")

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.nb_tentatives == 1
    assert "550" in log.erreur_message and "No such user" in log.erreur_message
    assert log.date_tentative_prochaine is None


def test_a_server_that_is_down_is_a_transient_failure(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    log = make_log("CREATION", "EMAIL")

    with pytest.raises(RetryLater):
        send(log)

    log.refresh_from_db()
    assert log.statut == Statut.ECHEC
    assert "unreachable" in log.erreur_message


def test_a_client_without_email_fails_permanently_with_the_reason(smtp_sink):
    log = make_log("CREATION", "EMAIL", email="")

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.erreur_message == "No email address for this recipient."
    assert smtp_sink.messages == []


def test_an_invalid_stored_address_fails_permanently(smtp_sink):
    log = make_log("CREATION", "EMAIL")
    log.attribution.client.email = "camille@example.org\nBcc: victim@example.org"
    log.attribution.client.save()

    assert send(log) == Statut.ECHEC_PERMANENT

    log.refresh_from_db()
    assert log.erreur_message.startswith("Invalid email address")
    assert smtp_sink.messages == []


def test_a_header_injection_attempt_in_a_name_stays_in_the_display_name(smtp_sink):
    from assets.models import Client

    log = make_log("CREATION", "EMAIL", name="Eve", email="eve@example.org")
    # A row saved before names refused control characters (save() now refuses this one).
    Client.objects.filter(pk=log.attribution.client_id).update(name="Eve\r\nBcc: victim@example.org")

    assert send(log) == Statut.ENVOYEE

    [message] = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["eve@example.org"]
    assert message["Bcc"] is None
    assert "\n" not in message["To"]


def test_html_in_a_name_is_escaped_in_the_html_part(smtp_sink):
    log = make_log("CREATION", "EMAIL", name="<b>Eve</b> <script>alert(1)</script>")

    send(log)

    html = smtp_sink.messages[0].get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = smtp_sink.messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "<b>Eve</b>" in text  # the text part shows the name as typed


def test_staff_copy_of_an_overdue_alert_goes_to_the_lender_in_the_default_language(smtp_sink, settings):
    from assets.tests.factories import AttributionFactory, StaffFactory

    settings.LANGUAGE_CODE = "fr"
    staff = StaffFactory(email="guichet@example.org")
    attribution = AttributionFactory(
        created_by=staff,
        client__language="en",
        client__name="Jo Bloggs",
        date_debut=timezone.now() - timezone.timedelta(hours=6),
        date_retour_prevue=timezone.now() - timezone.timedelta(hours=2),
    )
    log = make_log("RETARD", "EMAIL", attribution=attribution, audience="STAFF", niveau_escalade=2)

    assert send(log) == Statut.ENVOYEE

    [message] = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["guichet@example.org"]
    assert message["Subject"] == f"Retard : {attribution.materiel.name} chez Jo Bloggs"
    assert "relance n° 2" in message.get_body(preferencelist=("plain",)).get_content()
    assert NotificationLog.objects.get(pk=log.pk).destinataire == "guichet@example.org"


def test_a_resend_of_the_same_row_carries_the_same_message_id(smtp_sink):
    """A worker that died after the server accepted the message leaves the row to be sent again;
    the repeated Message-ID lets the recipient's mail system drop the copy. A re-armed row is a new message."""
    log = make_log("CREATION", "EMAIL")
    send(log)
    NotificationLog.objects.filter(pk=log.pk).update(statut=Statut.ECHEC)  # what the relay's recovery leaves
    send(log)
    NotificationLog.objects.filter(pk=log.pk).update(
        statut=Statut.EN_ATTENTE, date_scheduled=log.date_scheduled - timezone.timedelta(minutes=5)
    )
    send(log)

    first, again, rearmed = (message["Message-ID"] for message in smtp_sink.messages)
    assert first == again
    assert rearmed != first
    assert first.startswith(f"<rgm.{log.pk}.") and first.endswith("@example.org>")


@pytest.fixture
def noops(monkeypatch):
    """How many NOOPs the mail connections sent."""
    import smtplib

    sent = []
    original = smtplib.SMTP.noop

    def counting(self):
        sent.append(1)
        return original(self)

    monkeypatch.setattr(smtplib.SMTP, "noop", counting)
    return sent


def test_a_connection_in_steady_use_skips_the_noop(smtp_sink, noops):
    for _ in range(3):
        send(make_log("CREATION", "EMAIL"))

    assert len(smtp_sink.messages) == 3
    assert noops == []


def test_a_connection_idle_for_longer_than_the_setting_gets_a_noop_first(smtp_sink, noops, settings):
    settings.EMAIL_NOOP_AFTER_IDLE = 0
    for _ in range(3):
        send(make_log("CREATION", "EMAIL"))

    assert len(smtp_sink.messages) == 3
    assert len(noops) == 2  # before the second and the third message, on the kept connection
    assert smtp_sink.sessions == 1


def test_a_connection_dropped_while_in_steady_use_is_replaced_before_data(smtp_sink, noops):
    """No NOOP tells that the server hung up: the refused MAIL FROM does, and the message goes once on a new one."""
    first = make_log("CREATION", "EMAIL")
    send(first)
    smtp_sink.restart()

    second = make_log("CREATION", "EMAIL")
    assert send(second) == Statut.ENVOYEE

    assert noops == []
    assert smtp_sink.sessions == 2
    assert [message["X-RadGestMat-Notification"] for message in smtp_sink.messages] == [str(first.pk), str(second.pk)]
    second.refresh_from_db()
    assert second.nb_tentatives == 1
