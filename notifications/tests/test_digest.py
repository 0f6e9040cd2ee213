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


@pytest.mark.django_db
@pytest.mark.parametrize("window, grouped", [(15, ["10:05", "10:14"]), (60, ["10:05", "10:14", "10:59"])])
def test_the_slot_is_the_window_counted_from_the_epoch(settings, window, grouped):
    settings.DIGEST_WINDOW_MINUTES = window
    client = ClientFactory()
    at = {
        label: group_of(client, 1, at=NOW.replace(hour=int(label[:2]), minute=int(label[3:])), tag=label)[0]
        for label in ("09:59", "10:05", "10:14", "10:59")
    }

    taken, _now = digest.claim(at["10:05"].pk, now=NOW + timedelta(hours=1), skew=timedelta(0))

    assert taken == [at[label].pk for label in grouped]


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


# --- Two claims racing for one group (PostgreSQL: the only database where they run at once) ---------


def claim_in_a_thread(log_id: int) -> tuple[threading.Thread, list]:
    from django.db import connections

    result: list = []

    def run():
        try:
            result.append(digest.claim(log_id, now=NOW, skew=timedelta(0))[0])
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.fixture
def on_postgresql(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("claims run one at a time on SQLite; CI runs this file again with DATABASE_URL on PostgreSQL")


def waiting_on_a_row_lock() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL answers statistics views from a snapshot taken at their first read.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_that_meets_a_row_another_task_holds_waits_then_takes_the_rest_not_half(on_postgresql):
    """Another task has taken one row of the group and not committed yet: the claim waits for that row,
    finds it taken, takes nothing on that try, then takes the two rows left (the group as it is now)."""
    from django.db import transaction

    from radgestmat.testing.net import wait_until

    rows = group_of(ClientFactory(), 3)
    with transaction.atomic():
        NotificationLog.objects.filter(pk=rows[2].pk).update(statut=Statut.EN_COURS, nb_tentatives=1)
        thread, taken = claim_in_a_thread(rows[0].pk)
        wait_until(waiting_on_a_row_lock, what="the claim to wait for the row this transaction holds")
        assert not taken
    thread.join(timeout=20)

    assert taken == [[rows[0].pk, rows[1].pk]]
    saved = dict(NotificationLog.objects.filter(pk__in=[r.pk for r in rows]).values_list("pk", "nb_tentatives"))
    assert saved == {rows[0].pk: 1, rows[1].pk: 1, rows[2].pk: 1}  # the held row was not taken a second time


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_claims_of_one_group_at_once_one_takes_it_all_the_other_nothing(on_postgresql):
    from django.db import transaction

    from radgestmat.testing.net import wait_until

    rows = group_of(ClientFactory(), 3)
    with transaction.atomic():
        # The first claim runs inside this transaction, so it holds the whole group until the commit.
        first, first_at = digest.claim(rows[0].pk, now=NOW, skew=timedelta(0))
        thread, second = claim_in_a_thread(rows[2].pk)
        wait_until(waiting_on_a_row_lock, what="the second claim to wait for the first")
    thread.join(timeout=20)

    assert first == [r.pk for r in rows] and first_at == NOW
    assert second == [[]]
    assert set(NotificationLog.objects.filter(pk__in=first).values_list("statut", "nb_tentatives")) == {
        (Statut.EN_COURS, 1)
    }


@pytest.mark.django_db
def test_a_claim_takes_nothing_that_is_not_due_or_not_waiting():
    rows = group_of(ClientFactory(), 3)
    NotificationLog.objects.filter(pk=rows[1].pk).update(date_scheduled=NOW + timedelta(minutes=5))
    NotificationLog.objects.filter(pk=rows[2].pk).update(statut=Statut.ENVOYEE)

    assert digest.claim(rows[1].pk, now=NOW, skew=timedelta(minutes=1))[0] == []  # not due: not even alone
    assert digest.claim(rows[0].pk, now=NOW, skew=timedelta(minutes=1))[0] == [rows[0].pk]
    assert digest.claim(rows[0].pk, now=NOW, skew=timedelta(minutes=1))[0] == []  # taken already
    assert digest.claim(rows[1].pk, now=NOW, skew=timedelta(minutes=6))[0] == [rows[1].pk]


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
