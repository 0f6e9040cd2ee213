"""One clock for the whole deployment: the database's.

Workers, beat and web run on machines whose clocks drift apart. "Is this row due",
"is this claim stranded", "is this reminder still worth sending" compare a time with
times other machines wrote, so every worker-side decision reads the time from the
one server they all share (one query) and passes it down as ``now``: a worker whose
clock is behind does not refuse due rows, one ahead does not send early.

With SQLite (one machine) that is the machine's clock, read through SQLite. Tests set
``NOTIFICATION_CLOCK=process`` (radgestmat/testenv.py) because time-machine moves
Python's clock and cannot move PostgreSQL's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

T = TypeVar("T")

DATABASE = "database"
PROCESS = "process"


QUERIES = {
    # statement_timestamp(), not now(): inside a transaction now() is the transaction's start.
    "postgresql": "SELECT statement_timestamp()",
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
}


def now() -> datetime:
    """The current time by the database server (or by this process under ``NOTIFICATION_CLOCK=process``)."""
    query = QUERIES.get(connection.vendor)
    if settings.NOTIFICATION_CLOCK == PROCESS or query is None:
        return timezone.now()
    value = first_statement(lambda: _ask(query))
    if isinstance(value, str):  # SQLite answers text, in UTC
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def read_in_statement() -> bool:
    """Whether a statement reads the database's clock itself (``statement_timestamp()``), saving the
    round trip of `now`: PostgreSQL under ``NOTIFICATION_CLOCK=database``."""
    return settings.NOTIFICATION_CLOCK != PROCESS and connection.vendor == "postgresql"


def first_statement(run: Callable[[], T]) -> T:
    """Run a task's first statement; when the kept connection died since its last health check (at most
    once a second in a worker, `radgestmat.celery`), reconnect and run it once more.

    A connection found dead is one the server closed before the statement was sent, so running it
    again is safe. In the rare case the connection dies after the server committed it, a claim run
    again finds its rows taken and sends nothing; the relay recovers that claim as a stranded one.
    """
    try:
        return run()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return run()


def _ask(query: str):
    with connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]
