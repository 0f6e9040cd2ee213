"""Django settings for the delivery bench's peers: RadGestMat's settings plus django-celery-email and
django-post-office, against the bench's throwaway stack (never the product's settings).

django-celery-email: the producer's EMAIL_BACKEND publishes a task per message (chunk size 1), the
worker sends it with Django's plain SMTP backend. django-post-office: rows queued in its ``Email``
table, sent by its Celery task ``send_queued_mail`` (batches of 100, 5 threads) or by a task per row
(`bench.support.peer_tasks`). Both send to the same SMTP sink as RadGestMat, on the same queue.
"""

from __future__ import annotations

import os

from radgestmat import queues as _queues
from radgestmat.settings import *  # noqa: F403
from radgestmat.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "djcelery_email", "post_office"]

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_BACKEND = "djcelery_email.backends.CeleryEmailBackend"
CELERY_EMAIL_BACKEND = SMTP_BACKEND
CELERY_EMAIL_CHUNK_SIZE = 1
CELERY_EMAIL_TASK_CONFIG = {"queue": _queues.NOTIFICATIONS, "ignore_result": True}

POST_OFFICE = {
    "BACKENDS": {"default": SMTP_BACKEND},
    # The producer queues rows without triggering a task; the worker defines post-office's tasks.
    "CELERY_ENABLED": os.environ.get("PEER_POST_OFFICE_CELERY", "1") == "1",
    "LOG_LEVEL": 2,
}
CELERY_TASK_ROUTES = {"post_office.tasks.send_queued_mail": {"queue": _queues.NOTIFICATIONS}}
