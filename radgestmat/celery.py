"""The Celery app, configured from Django settings (``CELERY_`` namespace)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radgestmat.settings")

app = Celery("radgestmat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tasks"])


def broker_connection():
    """A connection to the broker named in settings (Sentinel transport options included), not opened yet."""
    from django.conf import settings

    return app.connection_for_write(settings.CELERY_BROKER_URL, connect_timeout=2)


from radgestmat import beat_registry  # noqa: E402,F401  (beat processes register a heartbeat)
from radgestmat.watchdog import AlertWatchdog  # noqa: E402

app.steps["worker"].add(AlertWatchdog)
