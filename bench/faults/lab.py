"""What every fault drill stands on: the drill registry, the Lab (lend, settle, count) and the reset between drills."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bench.stack import PostgresServer, RedisServer, Stack, StackError, tally, wait_settled

DRILL_SETTINGS = {
    "NOTIFICATION_RETRY_BASE_DELAY": "2",
    "NOTIFICATION_RETRY_MAX_DELAY": "6",
    "CELERY_TASK_SOFT_TIME_LIMIT": "10",
    "CELERY_TASK_TIME_LIMIT": "15",
    "RELAY_REDELIVER_MINUTES": "1",
    "EMAIL_TIMEOUT": "5",
}
RELAY_EVERY_SECONDS = 5
SETTLE_TIMEOUT = 240.0


@dataclass
class Drill:
    name: str
    title: str
    quick: bool
    run: Callable[[Lab], dict]


DRILLS: dict[str, Drill] = {}


def drill(name: str, title: str, *, quick: bool):
    def register(function):
        DRILLS[name] = Drill(name, title, quick, function)
        return function

    return register


class Lab:
    """The stack plus what every drill needs: lend a batch, start the fleet, wait, count."""

    def __init__(self, stack: Stack, postgres: PostgresServer, redis: RedisServer):
        self.stack = stack
        self.postgres = postgres
        self.redis = redis
        self.serial = 0

    def lend(
        self,
        count: int,
        *,
        with_phone: float = 0.5,
        due_in: timedelta = timedelta(days=5),
        started_ago: timedelta = timedelta(0),
    ) -> list[int]:
        """Lend ``count`` loans due in five days (no reminder falls in a drill); return their CREATION row ids.

        ``due_in`` / ``started_ago`` move the due time and the start from now, for a drill that wants
        a reminder or an overdue alert to fall inside it.

        Each borrower has an address of their own; ``with_phone`` of them a phone too
        (WhatsApp). Drills with bad data make their own borrowers and use `lend_to`.
        """
        from django.utils import timezone

        from assets import services
        from assets.models import Client, Materiel
        from notifications.models import NotificationLog, NotificationPreferences, TypeNotification

        now = timezone.now()
        attribution_ids = []
        for index in range(count):
            self.serial += 1
            n = self.serial
            client = Client.objects.create(
                name=f"Emprunteur {n}",
                email=f"borrower{n}@example.org",
                phone=f"+336{n:08d}" if (index % 100) < with_phone * 100 else "",
            )
            if client.phone:  # WhatsApp is opt-in: these borrowers agreed to it
                NotificationPreferences.objects.create(client=client, notifications_whatsapp=True)
            materiel = Materiel.objects.create(code=f"DRILL-{n:06d}", name="Caméra")
            loan = services.lend(materiel=materiel, client=client, due=now + due_in, now=now, start=now - started_ago)
            attribution_ids.append(loan.pk)
        return list(
            NotificationLog.objects.filter(
                attribution_id__in=attribution_ids, type_notification=TypeNotification.CREATION
            ).values_list("pk", flat=True)
        )

    def lend_groups(self, borrowers: int, items: int, *, with_phone: float = 0.5) -> list[int]:
        """Lend ``items`` items at once to each of ``borrowers`` borrowers (`services.lend_several`), due in
        five days: each borrower's confirmations go as one message per channel. Return the CREATION row ids."""
        from django.utils import timezone

        from assets import services
        from assets.models import Client, Materiel
        from notifications.models import NotificationLog, NotificationPreferences, TypeNotification

        now = timezone.now()
        attribution_ids = []
        for index in range(borrowers):
            self.serial += 1
            n = self.serial
            client = Client.objects.create(
                name=f"Emprunteur {n}",
                email=f"borrower{n}@example.org",
                phone=f"+336{n:08d}" if (index % 100) < with_phone * 100 else "",
            )
            if client.phone:
                NotificationPreferences.objects.create(client=client, notifications_whatsapp=True)
            materiels = [Materiel.objects.create(code=f"DRILL-{n:06d}-{item}", name="Caméra") for item in range(items)]
            loans = services.lend_several(materiels=materiels, client=client, due=now + timedelta(days=5), now=now)
            attribution_ids += [loan.pk for loan in loans]
        return list(
            NotificationLog.objects.filter(
                attribution_id__in=attribution_ids, type_notification=TypeNotification.CREATION
            ).values_list("pk", flat=True)
        )

    def lend_to(self, clients) -> list[int]:
        """Lend a new Materiel to each of these saved clients (made by the drill), due in five days;
        return their CREATION row ids."""
        from django.utils import timezone

        from assets import services
        from assets.models import Materiel
        from notifications.models import NotificationLog, TypeNotification

        now = timezone.now()
        attribution_ids = []
        for client in clients:
            self.serial += 1
            materiel = Materiel.objects.create(code=f"DRILL-{self.serial:06d}", name="Caméra")
            attribution_ids.append(
                services.lend(materiel=materiel, client=client, due=now + timedelta(days=5), now=now).pk
            )
        return list(
            NotificationLog.objects.filter(
                attribution_id__in=attribution_ids, type_notification=TypeNotification.CREATION
            ).values_list("pk", flat=True)
        )

    def settle(self, root_ids: list[int], started: float, *, timeout: float = SETTLE_TIMEOUT) -> dict:
        try:
            wait_settled(root_ids, timeout=timeout)
            settled = True
        except StackError:
            settled = False
        result = tally(root_ids, self.stack).as_dict()
        result.update(settled=settled, settle_seconds=round(time.monotonic() - started, 1))
        return result


def reset(lab: Lab) -> None:
    """Between drills: no process, no row, an empty broker, servers up and answering."""
    from django.db import connection

    lab.stack.stop_all()
    lab.stack.processes.clear()
    lab.stack.settings = dict(DRILL_SETTINGS)  # a drill may change them for the processes it starts
    lab.stack.twilio.clear()
    lab.stack.smtp.clear()  # log ids start again at 1 after the TRUNCATE below
    if lab.stack.smtp.controller is None:
        lab.stack.smtp.up()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notificationlog, assets_attribution, assets_materiel, assets_client, "
            "django_celery_results_taskresult RESTART IDENTITY CASCADE"
        )
    import redis

    redis.Redis.from_url(lab.redis.url).flushall()


def prepare_database() -> None:
    """Migrate, register the beat schedule, and run the relay every few seconds (as an admin edit would)."""
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    call_command("migrate", verbosity=0)
    call_command("setup_schedule", stdout=io.StringIO())
    every, _ = IntervalSchedule.objects.get_or_create(every=RELAY_EVERY_SECONDS, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="dispatch_due_notifications").update(crontab=None, interval=every)
    PeriodicTasks.update_changed()
