"""Which beat processes are alive, so a second beat is noticed (the deployment must run exactly one).

Each beat process, from ``beat_init``, refreshes its entry (host:pid) in a Redis
sorted set every ``HEARTBEAT_SECONDS``; entries older than ``STALE_SECONDS``
no longer count. Two beats would not plan anything twice (rows are unique), but
they would double every check's load and hide which one is the real clock.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time

from celery.signals import beat_init

logger = logging.getLogger("radgestmat.ops")

KEY = "radgestmat:beat:instances"
HEARTBEAT_SECONDS = 15
STALE_SECONDS = 60


def _redis_client(connection):
    return connection.default_channel.client


def record_alive(client, instance: str, now: float) -> None:
    pipe = client.pipeline()
    pipe.zadd(KEY, {instance: now})
    pipe.zremrangebyscore(KEY, 0, now - STALE_SECONDS)
    pipe.expire(KEY, STALE_SECONDS * 2)
    pipe.execute()


def live_beats(client, now: float) -> list[str]:
    members = client.zrangebyscore(KEY, now - STALE_SECONDS, "+inf")
    return sorted(member.decode() if isinstance(member, bytes) else member for member in members)


def live_beat_instances() -> list[str]:
    """The beats seen in the last minute, read from the broker's Redis."""
    from radgestmat.celery import broker_connection

    with broker_connection() as conn:
        conn.ensure_connection(max_retries=0, timeout=1)
        return live_beats(_redis_client(conn), time.time())


def _heartbeat_forever(instance: str) -> None:
    from radgestmat.celery import broker_connection

    while True:
        try:
            with broker_connection() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
                record_alive(_redis_client(conn), instance, time.time())
        except Exception:
            logger.warning("beat heartbeat: broker unreachable", exc_info=True)
        time.sleep(HEARTBEAT_SECONDS)


def _forget(instance: str) -> None:
    from radgestmat.celery import broker_connection

    try:
        with broker_connection() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)
            _redis_client(conn).zrem(KEY, instance)
    except Exception:  # noqa: BLE001
        pass  # the entry goes stale by itself


@beat_init.connect(dispatch_uid="radgestmat_beat_heartbeat")
def start_heartbeat(sender=None, **kwargs) -> None:
    instance = f"{socket.gethostname()}:{os.getpid()}"
    threading.Thread(target=_heartbeat_forever, args=(instance,), name="beat-heartbeat", daemon=True).start()
    atexit.register(_forget, instance)
