"""One message for several items (notifications.digest): one borrower, one type, one channel, one slot.

Messages go through the real send path to the SMTP sink and the fake Twilio API;
every row keeps its own audit, all rows of a group share the outcome and provider id.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from assets.services import lend_several
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory
from notifications import digest
from notifications.channels.whatsapp import _content_sid
from notifications.models import NotificationLog, Statut, WhatsAppConfig
from notifications.sending import send_notification
from notifications.webhooks import record_delivery_status

from .conftest import consent_to_whatsapp, make_log

# A slot starts at 10:00 UTC (15-minute slots count from the epoch): 10:05 is inside it.
NOW = datetime(2026, 12, 2, 10, 5, tzinfo=UTC)


def text_of(message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def group_of(
    client, n: int, kind: str = "RAPPEL_2H", canal: str = "EMAIL", *, at: datetime = NOW, tag: str = "CAM"
) -> list:
    rows = []
    for i in range(n):
        attribution = AttributionFactory(
            client=client,
            materiel=MaterielFactory(code=f"{tag}-{i}", name=f"Caméra {i}"),
            date_debut=at - timedelta(hours=1),
            date_retour_prevue=at + timedelta(hours=2),
        )
        row = make_log(kind, canal, attribution=attribution)
        NotificationLog.objects.filter(pk=row.pk).update(date_scheduled=at)
        rows.append(row)
    return rows


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.django_db
def test_three_items_lent_at_once_are_confirmed_in_one_email(smtp_sink, settings, django_capture_on_commit_callbacks):
    settings.WHATSAPP_ENABLED = False
    client = ClientFactory(email="camille@example.org", language="fr")
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        loans = lend_several(
            materiels=[MaterielFactory(code=f"KIT-{i}", name=f"Trépied {i}") for i in range(3)],
            client=client,
            due=now + timedelta(days=3),
            now=now,
        )

    creations = [m for m in smtp_sink.messages if "Prêt confirmé" in m["Subject"]]
    assert len(creations) == 1, [m["Subject"] for m in smtp_sink.messages]
    assert creations[0]["Subject"] == "Prêt confirmé : 3 matériels"
    body = text_of(creations[0])
    assert all(f"Trépied {i} (KIT-{i})" in body for i in range(3))
    rows = list(NotificationLog.objects.filter(attribution__in=loans, type_notification="CREATION"))
    assert len(rows) == 3
    assert {row.statut for row in rows} == {Statut.ENVOYEE}
    assert len({row.provider_message_id for row in rows}) == 1
    assert [row.nb_tentatives for row in rows] == [1, 1, 1]
    # Each loan keeps its own calendar entry.
    calendars = [p for p in creations[0].walk() if p.get_content_type() == "text/calendar"]
    assert len(calendars) == 3


@pytest.mark.django_db
def test_three_reminders_in_one_slot_go_as_one_email_and_the_other_tasks_send_nothing(smtp_sink, at_now):
    client = ClientFactory(email="camille@example.org", language="en")
    rows = group_of(client, 3)

    assert send_notification(rows[1].pk, now=NOW) == Statut.ENVOYEE
    assert send_notification(rows[0].pk, now=NOW) is None
    assert send_notification(rows[2].pk, now=NOW) is None

    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message["Subject"].startswith("3 items due back ")
    assert all(f"Caméra {i} (CAM-{i})" in text_of(message) for i in range(3))
    saved = list(NotificationLog.objects.filter(pk__in=[row.pk for row in rows]))
    assert {row.statut for row in saved} == {Statut.ENVOYEE}
    assert len({row.provider_message_id for row in saved}) == 1
    assert {row.destinataire for row in saved} == {"camille@example.org"}


@pytest.mark.django_db
def test_a_returned_item_leaves_the_group_before_sending(smtp_sink, at_now):
    client = ClientFactory(language="en")
    rows = group_of(client, 3)
    # Returned behind the planner's back (no signal): its row is still waiting when the group is claimed.
    from assets.models import Attribution

    Attribution.objects.filter(pk=rows[2].attribution_id).update(date_retour_effective=NOW, statut="RESTITUEE")

    send_notification(rows[0].pk, now=NOW)

    assert len(smtp_sink.messages) == 1
    body = text_of(smtp_sink.messages[0])
    assert "CAM-0" in body and "CAM-1" in body and "CAM-2" not in body
    statuses = dict(NotificationLog.objects.filter(pk__in=[r.pk for r in rows]).values_list("pk", "statut"))
    assert statuses == {rows[0].pk: Statut.ENVOYEE, rows[1].pk: Statut.ENVOYEE, rows[2].pk: Statut.ANNULEE}


@pytest.mark.django_db
def test_one_item_left_gets_the_single_item_message(smtp_sink, at_now):
    client = ClientFactory(language="en")
    rows = group_of(client, 2)
    from assets.models import Attribution

    Attribution.objects.filter(pk=rows[1].attribution_id).update(date_retour_effective=NOW, statut="RESTITUEE")

    send_notification(rows[0].pk, now=NOW)

    assert len(smtp_sink.messages) == 1
    assert "items" not in smtp_sink.messages[0]["Subject"]


@pytest.mark.django_db
def test_rows_in_other_slots_other_types_or_other_borrowers_are_not_grouped(smtp_sink, at_now):
    client = ClientFactory(language="en")
    first = group_of(client, 1)[0]
    earlier_slot = group_of(client, 1, at=NOW - timedelta(minutes=10), tag="B")[0]  # 09:55: the slot before
    other_type = group_of(client, 1, kind="CREATION", tag="C")[0]
    other_borrower = group_of(ClientFactory(), 1, tag="D")[0]

    for row in (first, earlier_slot, other_type, other_borrower):
        assert send_notification(row.pk, now=NOW) == Statut.ENVOYEE
    assert len(smtp_sink.messages) == 4


def test_the_slot_is_defined_once_by_the_window(settings):
    settings.DIGEST_WINDOW_MINUTES = 15
    assert digest.slot_of(NOW) == (datetime(2026, 12, 2, 10, 0, tzinfo=UTC), datetime(2026, 12, 2, 10, 15, tzinfo=UTC))
    settings.DIGEST_WINDOW_MINUTES = 60
    assert digest.slot_of(NOW)[0] == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_digests_off_sends_one_message_per_row(smtp_sink, settings, at_now):
    settings.DIGESTS_ENABLED = False
    rows = group_of(ClientFactory(), 3)

    for row in rows:
        assert send_notification(row.pk, now=NOW) == Statut.ENVOYEE
    assert len(smtp_sink.messages) == 3


@pytest.mark.django_db
def test_a_transient_failure_keeps_the_group_together_for_the_retry(smtp_sink, at_now):
    from notifications.exceptions import RetryLater

    rows = group_of(ClientFactory(), 3)
    smtp_sink.rcpt_reply = "451 4.3.0 Try again later"

    with pytest.raises(RetryLater):
        send_notification(rows[0].pk, now=NOW)
    saved = list(NotificationLog.objects.filter(pk__in=[r.pk for r in rows]))
    assert {row.statut for row in saved} == {Statut.ECHEC}
    assert len({row.date_tentative_prochaine for row in saved}) == 1

    smtp_sink.rcpt_reply = None
    later = NOW + timedelta(minutes=1)
    assert send_notification(rows[0].pk, now=later) == Statut.ENVOYEE
    assert len(smtp_sink.messages) == 1
    assert set(NotificationLog.objects.filter(pk__in=[r.pk for r in rows]).values_list("nb_tentatives", flat=True)) == {
        2
    }


@pytest.mark.django_db
def test_whatsapp_group_goes_as_one_message_and_every_row_follows_its_status(fake_twilio, settings, at_now):
    client = ClientFactory(phone="+33612345678", language="fr")
    consent_to_whatsapp(client)
    rows = group_of(client, 3, canal="WHATSAPP")
    fake_twilio.accept()

    assert send_notification(rows[0].pk, now=NOW) == Statut.ENVOYEE

    assert len(fake_twilio.forms()) == 1
    assert all(f"CAM-{i}" in fake_twilio.forms()[0]["Body"] for i in range(3))
    sid = NotificationLog.objects.get(pk=rows[0].pk).provider_message_id
    record_delivery_status(sid, "delivered", "", now=NOW)
    saved = NotificationLog.objects.filter(pk__in=[r.pk for r in rows])
    assert set(saved.values_list("provider_message_id", "delivery_status")) == {(sid, "delivered")}


@pytest.mark.django_db
def test_a_failed_delivery_report_fails_every_row_of_the_group_and_each_falls_back(fake_twilio, at_now):
    client = ClientFactory(phone="+33612345678", email="camille@example.org")
    consent_to_whatsapp(client)
    rows = group_of(client, 2, canal="WHATSAPP")
    fake_twilio.accept()
    send_notification(rows[0].pk, now=NOW)
    sid = NotificationLog.objects.get(pk=rows[0].pk).provider_message_id

    record_delivery_status(sid, "undelivered", "63016", now=NOW)

    saved = NotificationLog.objects.filter(pk__in=[r.pk for r in rows])
    assert set(saved.values_list("statut", flat=True)) == {Statut.ECHEC_PERMANENT}
    assert NotificationLog.objects.filter(fallback_of__in=rows).count() == 2


@pytest.mark.django_db
def test_the_whatsapp_list_template_is_used_for_a_group(settings):
    settings.WHATSAPP_CONTENT_SIDS = {"RAPPEL_2H": "HX" + "1" * 32}
    settings.WHATSAPP_GROUP_CONTENT_SIDS = {}
    log = NotificationLog(type_notification="RAPPEL_2H", canal="WHATSAPP")
    assert _content_sid(None, log, group=True) == "HX" + "1" * 32  # no list form: the single one, items listed
    settings.WHATSAPP_GROUP_CONTENT_SIDS = {"RAPPEL_2H": "HX" + "2" * 32}
    assert _content_sid(None, log, group=True) == "HX" + "2" * 32
    config = WhatsAppConfig(phone_number_sender="+14155238886", content_templates={"RAPPEL_2H_GROUP": "HX" + "3" * 32})
    config.clean()
    assert _content_sid(config, log, group=True) == "HX" + "3" * 32
    assert _content_sid(config, log, group=False) == "HX" + "1" * 32


# --- Two tasks racing for one group, on real workers (two worker threads) ---------------


@pytest.fixture
def celery_worker_pool():
    return "threads"


@pytest.fixture
def celery_worker_parameters():
    from radgestmat import queues

    return {
        "queues": queues.ALL,
        "perform_ping_check": False,
        "shutdown_timeout": 10,
        "concurrency": 2,
    }


@pytest.mark.django_db(transaction=True)
def test_two_tasks_racing_for_one_group_send_it_once_and_whole(live_worker, smtp_sink, monkeypatch):
    """Both tasks read the group, then both try to take it: one takes all of it, the other nothing."""
    from radgestmat.testing.net import wait_until
    from tasks import send_notification as send_task

    from .test_send_worker import broker_idle

    rows = group_of(ClientFactory(), 3, at=timezone.now() - timedelta(seconds=5))
    both_read = threading.Barrier(2, timeout=20)
    seen = []
    members = digest.members

    def members_then_wait(log_id, **kwargs):
        ids = members(log_id, **kwargs)
        if len(seen) < 2:
            seen.append((log_id, ids))
            both_read.wait()  # the two tasks stand before their UPDATE at the same time
        return ids

    monkeypatch.setattr(digest, "members", members_then_wait)

    send_task.delay(rows[0].pk)
    send_task.delay(rows[2].pk)

    wait_until(
        lambda: NotificationLog.objects.filter(pk__in=[r.pk for r in rows], statut=Statut.ENVOYEE).count() == 3,
        what="the group to be sent",
    )
    wait_until(broker_idle, what="both tasks to be done")
    assert [len(ids) for _log, ids in seen] == [3, 3]  # both saw the whole group
    assert len(smtp_sink.messages) == 1
    assert set(NotificationLog.objects.filter(pk__in=[r.pk for r in rows]).values_list("nb_tentatives", flat=True)) == {
        1
    }


@pytest.mark.django_db(transaction=True)
def test_a_task_whose_view_of_the_group_went_stale_takes_nothing(at_now):
    """The claim takes exactly the rows it read or none: a row taken in between rolls it all back."""
    rows = group_of(ClientFactory(), 3)
    members = digest.members
    calls = []

    def stale(log_id, **kwargs):
        ids = members(log_id, **kwargs)
        if not calls:
            # Another task takes one row of the group between this one's read and its UPDATE.
            NotificationLog.objects.filter(pk=rows[2].pk).update(statut=Statut.EN_COURS)
        calls.append(ids)
        return ids

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digest, "members", stale)
        taken = digest.claim(rows[0].pk, now=NOW, due_by=NOW)

    assert calls[0] == [r.pk for r in rows]
    # The first try took nothing (rolled back); the second read the group without the taken row.
    assert taken == [rows[0].pk, rows[1].pk]
    assert calls[1] == taken


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("canal", ["EMAIL", "WHATSAPP", "SMS"])
@pytest.mark.parametrize("kind", ["CREATION", "RAPPEL_2H", "RAPPEL_J_MOINS_1", "RETARD", "RESTITUTION", "PROLONGATION"])
def test_every_group_message_renders_and_lists_every_item(kind, canal, language):
    from notifications.messages import render_group, sample_log

    now = timezone.now()
    group = [sample_log(kind, canal, language, now=now) for _ in range(3)]
    for index, row in enumerate(group):
        row.attribution.materiel.code = f"KIT-{index}"

    message = render_group(group, now=now)

    assert all(f"KIT-{index}" in message.body for index in range(3))
    assert "3" in (message.subject or message.body)
    assert "@@MISSING" not in message.body + message.subject + message.html
    if canal == "EMAIL":
        assert message.subject and len(message.subject) < 60
        assert all(f"KIT-{index}" in message.html for index in range(3))
    assert message.content_variables["2"].count("KIT-") == 3 and "\n" not in message.content_variables["2"]
