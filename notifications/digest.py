"""One message for several items: which rows go out together, and claiming them all or none.

A borrower who takes three items at once, or has three items due tomorrow at 08:00,
gets one message listing them, not three. The rows stay separate (each its own
`NotificationLog` audit and its own send task); they only travel together:

- **The group** of a row: the borrower's rows of the same type, channel, audience and
  escalation level whose ``date_scheduled`` falls in the same slot — slots are
  ``DIGEST_WINDOW_MINUTES`` long, counted from the Unix epoch, so every task computes
  the same partition — and that are claimable and due now. `slot_of` is the one
  definition of "same slot".
- **The claim**: the first of the group's tasks to run takes every row in one
  conditional UPDATE, inside a transaction that is rolled back unless it took exactly
  the rows it meant to. The other tasks find their rows taken and send nothing, so a
  group is never sent twice nor half-sent. On PostgreSQL a second UPDATE over a row the
  first one holds waits for it, then re-checks the status and skips the row: its count
  falls short and it rolls back.

After the claim, `sending` lets rows that stopped mattering (item returned, reminder
switched off) leave the group as ANNULEE, and sends one message for the rest; every
row of the group records the same outcome and provider id. ``DIGESTS_ENABLED=False``
makes every group a single row again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Subquery

from .models import CLAIMABLE_STATUTS, Audience, NotificationLog, Statut, TypeNotification

# A group cannot be claimed when other tasks keep taking some of its rows; after this many
# tries the row is left to its own redelivery by the relay.
CLAIM_TRIES = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A reply answers one message of the borrower's (`notifications.inbound`): never part of a group.
UNGROUPED_TYPES = frozenset({TypeNotification.REPONSE})


def slot_of(when: datetime) -> tuple[datetime, datetime]:
    """The slot ``when`` falls in: [start, end), ``DIGEST_WINDOW_MINUTES`` long, aligned on the epoch."""
    width = timedelta(minutes=max(1, settings.DIGEST_WINDOW_MINUTES))
    start = EPOCH + ((when - EPOCH) // width) * width
    return start, start + width


def members(log_id: int, *, due_by: datetime) -> list[int]:
    """Ids of the claimable rows due by ``due_by`` in ``log_id``'s group, oldest first; [] when the row
    itself is not among them (taken, finished, not due). One query: the borrower's claimable due rows
    of the same type, channel, audience and level (a handful), cut to the row's slot here."""
    own = NotificationLog.objects.filter(pk=log_id)

    def same(field: str) -> Subquery:
        return Subquery(own.values(field)[:1])

    rows = list(
        NotificationLog.objects.filter(
            attribution__client_id=same("attribution__client_id"),
            type_notification=same("type_notification"),
            canal=same("canal"),
            audience=same("audience"),
            niveau_escalade=same("niveau_escalade"),
            statut__in=CLAIMABLE_STATUTS,
            date_scheduled__lte=due_by,
        )
        .order_by("date_scheduled", "id")
        .values_list("id", "date_scheduled", "audience", "type_notification")
    )
    mine = next((row for row in rows if row[0] == log_id), None)
    if mine is None:
        return []
    if mine[2] != Audience.CLIENT or mine[3] in UNGROUPED_TYPES:
        return [log_id]
    slot = slot_of(mine[1])
    return [row[0] for row in rows if slot[0] <= row[1] < slot[1]]


def claim(log_id: int, *, now: datetime, due_by: datetime) -> list[int]:
    """Take ``log_id``'s whole group for this worker: the ids taken (``log_id`` among them), or [].

    [] when the row is gone, no longer claimable, not due by ``due_by``, or another task
    holds it. ``now`` is recorded as the claim time.
    """
    take = {"statut": Statut.EN_COURS, "date_claimed": now, "nb_tentatives": F("nb_tentatives") + 1}
    if not settings.DIGESTS_ENABLED:
        ids = [log_id]
    else:
        for _attempt in range(CLAIM_TRIES):
            ids = members(log_id, due_by=due_by)
            if len(ids) <= 1:
                break
            with transaction.atomic():
                taken = NotificationLog.objects.filter(
                    pk__in=ids, statut__in=CLAIMABLE_STATUTS, date_scheduled__lte=due_by
                ).update(**take)
                if taken == len(ids):
                    return ids
                # Another task took part of the group meanwhile: take nothing, look again.
                transaction.set_rollback(True)
        else:
            return []
        if not ids:
            return []
    # One row: the conditional UPDATE alone is the claim.
    taken = NotificationLog.objects.filter(pk=log_id, statut__in=CLAIMABLE_STATUTS, date_scheduled__lte=due_by).update(
        **take
    )
    return [log_id] if taken else []
