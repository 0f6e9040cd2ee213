"""One message for several items: which rows go out together, and claiming them all or none.

A borrower who takes three items at once, or has three items due tomorrow at 08:00,
gets one message listing them, not three. The rows stay separate (each its own
`NotificationLog` audit and its own send task); they only travel together:

- **The group** of a row: the borrower's rows of the same type, channel, audience and
  escalation level whose ``date_scheduled`` falls in the same slot — slots are
  ``DIGEST_WINDOW_MINUTES`` long, counted from the Unix epoch, so every task computes
  the same partition — and that are claimable and due now. `CLAIM_SQL` is the one
  definition of "same slot".
- **The claim**: the first of the group's tasks to run takes every row in one
  statement (`CLAIM_SQL`) that takes exactly the rows it found or none. The other tasks
  find their rows taken and send nothing, so a group is never sent twice nor
  half-sent. On PostgreSQL a claim over a row another one holds waits for it, then
  re-checks the row and, finding it taken, takes nothing and looks again.

After the claim, `sending` lets rows that stopped mattering (item returned, reminder
switched off) leave the group as ANNULEE, and sends one message for the rest; every
row of the group records the same outcome and provider id. ``DIGESTS_ENABLED=False``
makes every group a single row again.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from assets.models import Attribution
from radgestmat import clock

from .models import CLAIMABLE_STATUTS, Audience, NotificationLog, Statut, TypeNotification

# A group cannot be claimed when other tasks keep taking some of its rows; after this many
# tries the row is left to its own redelivery by the relay.
CLAIM_TRIES = 3
# A reply answers one message of the borrower's (`notifications.inbound`): never part of a group.
UNGROUPED_TYPES = frozenset({TypeNotification.REPONSE})


# The claim, one statement: find the row's group, lock it, take it all or nothing, and (PostgreSQL) read
# the database's clock — the send's first round trip and its only one before the load. Parameters:
# id, now (None: the database's clock), skew (how far ahead a row still counts as due), grouped
# (DIGESTS_ENABLED), width (the slot in seconds), client/ungrouped (the audience and types always alone).
#
# On PostgreSQL `candidates` reads the statement's snapshot; `locked` takes their row locks in id
# order (no deadlock between two claims), waiting for a task that holds one, and re-checks each row
# as it is then: a row another task took meanwhile drops out, the counts differ, and `taken` takes
# nothing (the caller looks again). SQLite runs one writer at a time: its UPDATE is the whole claim.
CLAIM_SQL = {
    "postgresql": """
WITH clock AS (SELECT now, now + %(skew)s AS due_by FROM (SELECT COALESCE(%(now)s::timestamptz, statement_timestamp()) AS now) AS t),
own AS (
    SELECT n.id, n.type_notification, n.canal, n.audience, n.niveau_escalade, a.client_id,
           floor(extract(epoch FROM n.date_scheduled) / %(width)s) AS slot
    FROM {log} n JOIN {loan} a ON a.id = n.attribution_id, clock
    WHERE n.id = %(id)s AND n.statut = ANY(%(claimable)s) AND n.date_scheduled <= clock.due_by
),
candidates AS (
    SELECT own.id FROM own
    UNION
    SELECT n.id
    FROM own JOIN {loan} a ON a.client_id = own.client_id JOIN {log} n ON n.attribution_id = a.id, clock
    WHERE %(grouped)s AND own.audience = %(client)s AND own.type_notification <> ALL(%(ungrouped)s)
      AND n.type_notification = own.type_notification AND n.canal = own.canal AND n.audience = own.audience
      AND n.niveau_escalade = own.niveau_escalade
      AND n.statut = ANY(%(claimable)s) AND n.date_scheduled <= clock.due_by
      AND floor(extract(epoch FROM n.date_scheduled) / %(width)s) = own.slot
),
locked AS (
    SELECT n.id FROM {log} n, clock
    WHERE n.id IN (SELECT id FROM candidates)
      AND n.statut = ANY(%(claimable)s) AND n.date_scheduled <= clock.due_by
    ORDER BY n.id FOR UPDATE OF n
),
taken AS (
    UPDATE {log} SET statut = %(en_cours)s, date_claimed = (SELECT now FROM clock), nb_tentatives = nb_tentatives + 1
    WHERE id IN (SELECT id FROM locked) AND (SELECT count(*) FROM locked) = (SELECT count(*) FROM candidates)
    RETURNING id, date_scheduled
)
SELECT (SELECT count(*) FROM candidates), (SELECT now FROM clock), taken.id
FROM (SELECT 1) AS one LEFT JOIN taken ON true
ORDER BY taken.date_scheduled, taken.id
""",
    "sqlite": """
WITH own AS (
    SELECT n.id, n.type_notification, n.canal, n.audience, n.niveau_escalade, a.client_id,
           CAST(strftime('%%s', n.date_scheduled) AS INTEGER) / %(width)s AS slot
    FROM {log} n JOIN {loan} a ON a.id = n.attribution_id
    WHERE n.id = %(id)s AND n.statut IN (SELECT value FROM json_each(%(claimable)s)) AND n.date_scheduled <= %(due_by)s
),
candidates AS (
    SELECT own.id FROM own
    UNION
    SELECT n.id
    FROM own JOIN {loan} a ON a.client_id = own.client_id JOIN {log} n ON n.attribution_id = a.id
    WHERE %(grouped)s AND own.audience = %(client)s AND own.type_notification NOT IN (SELECT value FROM json_each(%(ungrouped)s))
      AND n.type_notification = own.type_notification AND n.canal = own.canal AND n.audience = own.audience
      AND n.niveau_escalade = own.niveau_escalade
      AND n.statut IN (SELECT value FROM json_each(%(claimable)s)) AND n.date_scheduled <= %(due_by)s
      AND CAST(strftime('%%s', n.date_scheduled) AS INTEGER) / %(width)s = own.slot
)
UPDATE {log} SET statut = %(en_cours)s, date_claimed = %(now)s, nb_tentatives = nb_tentatives + 1
WHERE id IN (SELECT id FROM candidates)
RETURNING id, date_scheduled
""",
}


def claim(log_id: int, *, now: datetime | None, skew: timedelta) -> tuple[list[int], datetime]:
    """Take ``log_id``'s whole group for this worker: (the ids taken, oldest first, ``log_id`` among them,
    the time of the claim). The ids are [] when the row is gone, no longer claimable, not due by
    ``now + skew``, or another task holds it.

    ``now`` None: the database's clock, read by the claim itself where it can (`radgestmat.clock`).
    """
    if now is None and not clock.read_in_statement():
        now = clock.now()
    params = {
        "id": log_id,
        "grouped": settings.DIGESTS_ENABLED,
        "width": max(1, settings.DIGEST_WINDOW_MINUTES) * 60,
        "client": Audience.CLIENT.value,
        "en_cours": Statut.EN_COURS.value,
    }
    if connection.vendor == "postgresql":
        params |= {"now": now, "skew": skew, "claimable": list(CLAIMABLE_STATUTS), "ungrouped": list(UNGROUPED_TYPES)}
        for _attempt in range(CLAIM_TRIES):
            rows = clock.first_statement(lambda: _run(CLAIM_SQL["postgresql"], params))
            candidates, claimed_at = rows[0][0], rows[0][1]
            ids = [row[2] for row in rows if row[2] is not None]
            if ids or not candidates:
                return ids, claimed_at
            # Another task took part of the group meanwhile: nothing was taken; look again.
        return [], claimed_at
    assert now is not None
    params |= {
        "now": connection.ops.adapt_datetimefield_value(now),
        "due_by": connection.ops.adapt_datetimefield_value(now + skew),
        "claimable": json.dumps(list(CLAIMABLE_STATUTS)),
        "ungrouped": json.dumps(list(UNGROUPED_TYPES)),
    }
    rows = clock.first_statement(lambda: _run(CLAIM_SQL["sqlite"], params))
    return [row[0] for row in sorted(rows, key=lambda row: (row[1], row[0]))], now


def _run(sql: str, params: dict) -> list[tuple]:
    log_table = connection.ops.quote_name(NotificationLog._meta.db_table)
    loan_table = connection.ops.quote_name(Attribution._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(log=log_table, loan=loan_table), params)
        return cursor.fetchall()
