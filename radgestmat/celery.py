"""The Celery app, configured from Django settings (``CELERY_`` namespace)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_postrun, task_prerun
from celery.utils.serialization import jsonify, strtobool
from celery.worker.control import (  # type: ignore[attr-defined]  # celery-types omit these two helpers
    _wanted_config_key,
    inspect_command,
    ok,
)
from kombu.utils.encoding import safe_repr

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radgestmat.settings")

app = Celery("radgestmat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tasks"])


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task=None, **kwargs) -> None:
    """Around each task, what Django does around each request: close connections that are past
    CONN_MAX_AGE or broke (settings.CELERY_DB_REUSE_MAX keeps Celery from closing them all)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # runs inside the caller's transaction: its connection is not ours to close
    from django.conf import settings
    from django.db import close_old_connections, connections

    close_old_connections()
    if settings.NOTIFICATION_CLOCK != "database":
        return
    # CONN_HEALTH_CHECKS would cost a `SELECT 1` before every task; one a second is enough, since every
    # task's first statement (the send's claim, or `radgestmat.clock.now`) reconnects by itself when the
    # connection died meanwhile (`radgestmat.clock.first_statement`).
    moment = time.monotonic()
    wrapper: Any  # django-stubs omit the health-check attributes of a connection wrapper
    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is None or wrapper.health_check_done or not wrapper.health_check_enabled:
            continue
        if moment - getattr(wrapper, "health_checked_at", -1e9) < settings.DB_HEALTH_CHECK_INTERVAL:
            wrapper.health_check_done = True
        else:
            wrapper.health_checked_at = moment  # the check runs at this task's first query


_soft_limit_held = False


@task_postrun.connect
def hold_late_soft_time_limit(**kwargs) -> None:
    """Once a task has finished, a prefork child ignores the soft time limit's signal until its next task.

    The limit is a SIGUSR1 from the worker's main process, on a timer it runs in its event loop. When
    that loop stalls (the main process reconnecting to a broker that was cut off), the timer fires
    late, after the task finished, while the child is writing its result to the main process: the
    signal's exception broke that write and the child wrote a second message into the first, and the
    main process died on the garbled message (UnicodeDecodeError in asynpool, "Unrecoverable error").
    """
    global _soft_limit_held
    from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler

    if (
        SIG_SOFT_TIMEOUT is not None
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(SIG_SOFT_TIMEOUT) is soft_timeout_sighandler
    ):
        signal.signal(SIG_SOFT_TIMEOUT, signal.SIG_IGN)
        _soft_limit_held = True


@task_prerun.connect
def arm_soft_time_limit(**kwargs) -> None:
    global _soft_limit_held
    if _soft_limit_held and threading.current_thread() is threading.main_thread():
        from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler

        signal.signal(SIG_SOFT_TIMEOUT, soft_timeout_sighandler)
        _soft_limit_held = False


# The worker answers `inspect conf` (Flower's worker "Config" tab) with every Django setting, since
# the app reads them all; Celery's own censoring misses REDIS_URL, CACHES and the like. These two
# replace Celery's commands of the same names with answers where every credential is masked by
# the same filter as the server-error reports.
@inspect_command(alias="dump_conf", signature="[include_defaults=False]", args=[("with_defaults", strtobool)])
def conf(state, with_defaults=False, **kwargs):
    """List configuration, credentials masked."""
    from radgestmat.error_emails import SafeExceptionReporterFilter

    cleanse = SafeExceptionReporterFilter().cleanse_setting
    table = state.app.conf.table(with_defaults=with_defaults)
    masked = {key: cleanse(key, value) for key, value in table.items() if _wanted_config_key(key)}
    return jsonify(masked, keyfilter=_wanted_config_key, unknown_type_filter=safe_repr)


@inspect_command()
def report(state):
    """Information about Celery installation for bug reports, URL passwords masked."""
    from radgestmat.logging import mask_url_credentials

    return ok(mask_url_credentials(state.app.bugreport()))


def broker_connection():
    """A connection to the broker named in settings (Sentinel transport options included), not opened yet."""
    from django.conf import settings

    return app.connection_for_write(settings.CELERY_BROKER_URL, connect_timeout=2)


class BoundedEventPublish(bootsteps.StartStopStep):
    """Worker events (heartbeats) are published with settings.EVENT_PUBLISH_RETRY_POLICY.

    Celery's heartbeat asks for ``retry=True`` with kombu's default policy, which retries
    forever: during a network cut the worker's main process hung in that publish, so time
    limits fired late and nothing else ran. A heartbeat lost is harmless; the next one follows.
    Started again with every new broker connection (the event dispatcher is remade then).
    """

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, consumer):
        from django.conf import settings

        dispatcher = consumer.event_dispatcher
        if dispatcher is None or getattr(dispatcher, "_bounded", False):
            return
        send = dispatcher.send

        def bounded_send(*args, retry_policy=None, **kwargs):
            return send(*args, retry_policy=retry_policy or settings.EVENT_PUBLISH_RETRY_POLICY, **kwargs)

        dispatcher.send = bounded_send
        dispatcher._bounded = True


app.steps["consumer"].add(BoundedEventPublish)

from radgestmat import beat_registry  # noqa: E402,F401  (beat processes register a heartbeat)
from radgestmat.watchdog import AlertWatchdog  # noqa: E402

app.steps["worker"].add(AlertWatchdog)
