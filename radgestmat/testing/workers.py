"""Around a Celery worker started inside the test process: an empty broker before and after, and the
database connections it leaves behind."""

from __future__ import annotations

from collections.abc import Iterable


def purge_queues(app, queues: Iterable[str]) -> None:
    """Empty ``queues`` and the unacknowledged messages on ``app``'s Redis broker; fails (never skips) when Redis is missing."""
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.ping()
        client.delete(*queues, "unacked", "unacked_index")


def close_other_database_connections() -> None:
    """On PostgreSQL, end the test database's other connections (a finished worker thread keeps its own,
    CONN_MAX_AGE), or the test database cannot be dropped at the end of the session."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
