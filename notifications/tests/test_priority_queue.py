"""A loan's confirmation does not wait behind a backlog of reminders: the desk's messages take the priority queue."""

from __future__ import annotations

import time

import pytest
from celery.signals import after_task_publish
from django.db import transaction
from django.utils import timezone

from assets.services import lend
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications import publishing
from notifications.models import NotificationLog, Statut, TypeNotification
from radgestmat import queues
from radgestmat.celery import app
from radgestmat.testing.net import wait_until

from .conftest import make_log, purge_broker

BACKLOG = 60


def queue_lengths() -> dict[str, int]:
    with app.connection_for_write() as conn:
        client = conn.default_channel.client  # type: ignore[attr-defined]  # kombu-stubs: StdChannel; Redis's channel has its client
        return {queue: client.llen(queue) for queue in queues.ALL}


@pytest.mark.django_db(transaction=True)
def test_desk_messages_are_published_to_the_priority_queue(celery_app, empty_broker):
    creation = make_log(TypeNotification.CREATION, "EMAIL")
    reminder = make_log(TypeNotification.RAPPEL_J_MOINS_1, "EMAIL")
    receipt = make_log(TypeNotification.RESTITUTION, "EMAIL")

    publishing.publish([reminder.pk, creation.pk, receipt.pk])

    assert queue_lengths() == {queues.PRIORITY: 2, queues.DEFAULT: 0, queues.NOTIFICATIONS: 1}
    purge_broker()


@pytest.mark.django_db(transaction=True)
def test_a_reply_to_a_borrowers_message_takes_the_priority_queue(celery_app, empty_broker):
    reply = make_log(TypeNotification.REPONSE, "SMS")
    reminder = make_log(TypeNotification.RAPPEL_2H, "SMS")

    publishing.publish([reminder.pk, reply.pk])

    assert queue_lengths() == {queues.PRIORITY: 1, queues.DEFAULT: 0, queues.NOTIFICATIONS: 1}
    purge_broker()


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_overtakes_a_backlog_of_reminders(live_worker, smtp_sink, settings):
    settings.WHATSAPP_ENABLED = False
    backlog = [make_log(TypeNotification.RAPPEL_2H, "EMAIL").pk for _ in range(BACKLOG)]
    publishing.publish(backlog)

    # Counted from the confirmation's publish: until then the queues cannot know of it (the loan's
    # transaction is still committing and planning, which a loaded machine can stretch over a few sends).
    published: list[float] = []

    def stamp(sender=None, routing_key=None, **kwargs):
        if routing_key == queues.PRIORITY:
            published.append(time.time())

    after_task_publish.connect(stamp, weak=False)
    try:
        with transaction.atomic():
            now = timezone.now()
            loan = lend(
                materiel=MaterielFactory(code="DESK-1"),
                client=ClientFactory(email="at-the-desk@example.org"),
                due=now + timezone.timedelta(days=3),
                now=now,
            )
    finally:
        after_task_publish.disconnect(stamp)
    creation = NotificationLog.objects.get(attribution=loan, type_notification=TypeNotification.CREATION)
    assert published, "the confirmation was not published to the priority queue"

    wait_until(lambda: creation.pk in smtp_sink.accepted_at, what="the confirmation email", timeout=60)
    arrived_at = smtp_sink.accepted_at[creation.pk]
    overtaken = [pk for pk in backlog if published[0] <= smtp_sink.accepted_at.get(pk, float("inf")) < arrived_at]
    still_waiting = [pk for pk in backlog if smtp_sink.accepted_at.get(pk, float("inf")) > arrived_at]
    # The solo worker may be sending one reminder when the confirmation is published, and hold the next.
    assert len(overtaken) <= 2, f"{len(overtaken)} reminders went out after the confirmation was published"
    assert still_waiting, "the backlog drained before the loan: nothing was overtaken, the test proves nothing"

    wait_until(
        lambda: NotificationLog.objects.filter(pk__in=backlog, statut=Statut.ENVOYEE).count() == BACKLOG,
        what="the backlog to drain",
        timeout=120,
    )
