"""The relay: every minute, send the rows whose time has come and recover the stranded ones.

Rows wait in the database with their `date_scheduled`; nothing waits in Redis.
A run:

1. Recovers rows claimed (EN_COURS) for longer than the task's hard time limit —
   their worker died — back to ECHEC (claimable), or ECHEC_PERMANENT when their
   attempts are used up.
2. Takes due rows in bounded batches, oldest first: waiting rows never enqueued
   (or enqueued so long ago that the message must be lost), and failed rows whose
   retry is well past its time (the retry message was lost). Within a batch it
   cancels what must no longer go out (a reminder or overdue alert of a returned
   loan, a pre-due reminder once the due time has passed or of another duration
   class) and gives up on rows out of attempts; the rest is enqueued after commit.

Constant queries per batch; on PostgreSQL two relays at once split the rows
(`SKIP LOCKED`) instead of both enqueueing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from . import lifecycle, outbox, sending
from .models import LOST_RETRY_AFTER, Canal, CodeErreur, NotificationLog, Statut
from .reasons import reason
from .timeline import lapse_reason

# Past the hard time limit, a claimed row's worker is dead (the limit kills the task).
CLAIM_MARGIN = timedelta(seconds=30)


@dataclass
class RelayReport:
    enqueued: int = 0
    cancelled: int = 0
    recovered: int = 0
    failed_permanently: int = 0
    batches: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "enqueued": self.enqueued,
            "cancelled": self.cancelled,
            "recovered": self.recovered,
            "failed_permanently": self.failed_permanently,
            "batches": self.batches,
        }


def stranded_claims(now: datetime):
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + CLAIM_MARGIN
    return NotificationLog.objects.filter(statut=Statut.EN_COURS, date_claimed__lt=now - limit)


def recover_stranded(now: datetime, report: RelayReport) -> None:
    """EN_COURS rows whose worker died: back to ECHEC (the batch below sends them) or ECHEC_PERMANENT.

    A WhatsApp or SMS row is not sent again: the worker may have died after Twilio accepted
    the message, which is the same ambiguity as a Twilio 5xx, and a duplicate is the worse harm.
    Nor is an email whose worker died waiting for the reply to the end of its DATA (the
    channel marks the claimed row AMBIGUOUS before the final "."): the server may have accepted it.
    """
    message = {**reason("WORKER_STOPPED"), "erreur_message": ""}
    ambiguous = {**reason("AMBIGUOUS_TWILIO"), "erreur_message": ""}
    ambiguous_email = {**reason("AMBIGUOUS_EMAIL"), "erreur_message": ""}
    with transaction.atomic():
        stranded = stranded_claims(now)
        report.failed_permanently += stranded.filter(canal=Canal.EMAIL, erreur_code=CodeErreur.AMBIGUOUS).update(
            statut=Statut.ECHEC_PERMANENT,
            **ambiguous_email,
            date_claimed=None,
            date_tentative_prochaine=None,
        )
        report.failed_permanently += stranded.filter(canal__in=[Canal.WHATSAPP, Canal.SMS]).update(
            statut=Statut.ECHEC_PERMANENT,
            erreur_code=CodeErreur.AMBIGUOUS,
            **ambiguous,
            date_claimed=None,
            date_tentative_prochaine=None,
        )
        report.failed_permanently += stranded.filter(nb_tentatives__gte=settings.NOTIFICATION_MAX_ATTEMPTS).update(
            statut=Statut.ECHEC_PERMANENT,
            erreur_code=CodeErreur.WORKER_STOPPED,
            **message,
            date_claimed=None,
            date_tentative_prochaine=None,
        )
        # An old retry time makes the row count as "retry lost", so the batch enqueues it now.
        report.recovered += stranded.update(
            statut=Statut.ECHEC,
            erreur_code=CodeErreur.WORKER_STOPPED,
            **message,
            date_claimed=None,
            date_tentative_prochaine=now - LOST_RETRY_AFTER,
        )


def must_not_go_out(row: dict, now: datetime) -> bool:
    return bool(
        lapse_reason(
            row["type_notification"],
            returned=row["attribution__date_retour_effective"] is not None,
            due=row["attribution__date_retour_prevue"],
            duree=row["attribution__duree"],
            now=now,
        )
    )


def relay_batch(now: datetime, report: RelayReport) -> int:
    """One bounded batch; returns how many rows it took."""
    with transaction.atomic():
        rows = list(
            NotificationLog.objects.to_relay(now)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("date_scheduled", "id")
            .values(
                "id",
                "statut",
                "nb_tentatives",
                "type_notification",
                "attribution__date_retour_effective",
                "attribution__date_retour_prevue",
                "attribution__duree",
            )[: settings.RELAY_BATCH_SIZE]
        )
        cancel, give_up, send = [], [], []
        for row in rows:
            if must_not_go_out(row, now):
                cancel.append(row["id"])
            elif row["nb_tentatives"] >= settings.NOTIFICATION_MAX_ATTEMPTS:
                give_up.append(row["id"])
            else:
                send.append(row["id"])
        if cancel:
            report.cancelled += lifecycle.cancel(
                NotificationLog.objects.filter(id__in=cancel),
                code="NO_LONGER_RELEVANT",
            )
        if give_up:
            report.failed_permanently += NotificationLog.objects.filter(
                id__in=give_up, statut__in=[Statut.EN_ATTENTE, Statut.ECHEC]
            ).update(statut=Statut.ECHEC_PERMANENT, date_tentative_prochaine=None)
        report.enqueued += outbox.mark_enqueued(send, now=now)
    return len(rows)


def dispatch_due_notifications(*, now: datetime) -> RelayReport:
    """Recover stranded rows, then enqueue due rows in batches (at most RELAY_MAX_BATCHES per run)."""
    report = RelayReport()
    if sending._unrecorded_sends:  # this process's own sends first: they are not stranded
        sending.record_late_sends()
    recover_stranded(now, report)
    while report.batches < settings.RELAY_MAX_BATCHES:
        taken = relay_batch(now, report)
        report.batches += 1
        if taken < settings.RELAY_BATCH_SIZE:
            break
    return report
