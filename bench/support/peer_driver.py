"""The producer side of a peer's throughput run in bench/delivery.py, in a process of its own
(DJANGO_SETTINGS_MODULE=bench.peer_settings): prepares N messages, publishes them the peer's way,
and prints one JSON line with the seconds from the first publish until the broker held no message.

    python -m bench.support.peer_driver MODE N MESSAGE_JSON

MODE: ``celery-email`` (the producer's EMAIL_BACKEND publishes a task per message),
``post-office-batch`` (N rows queued, then one ``send_queued_mail`` task sends them in batches),
``post-office-task`` (N rows queued, then a task per row). MESSAGE_JSON holds the subject, text and
HTML of one of RadGestMat's CREATION emails, so every peer sends a message of the same size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

MODES = ("celery-email", "post-office-batch", "post-office-task")


def main() -> int:
    mode, n, message_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    if mode not in MODES:
        print(f"unknown mode {mode!r}; one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives, get_connection
    from django.core.management import call_command

    from bench.delivery import drain_seconds
    from radgestmat import queues
    from radgestmat.celery import app

    call_command("migrate", "post_office", verbosity=0)
    message = json.loads(message_path.read_text())
    sender = settings.DEFAULT_FROM_EMAIL
    recipients = [f"peer{index}@example.org" for index in range(n)]
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    if mode == "celery-email":
        emails = []
        for to in recipients:
            email = EmailMultiAlternatives(message["subject"], message["body"], sender, [to])
            email.attach_alternative(message["html"], "text/html")
            emails.append(email)

        def publish() -> None:
            get_connection().send_messages(emails)

    else:
        from post_office import mail
        from post_office.models import Email

        mail.send_many(
            [
                {
                    "sender": sender,
                    "recipients": [to],
                    "subject": message["subject"],
                    "message": message["body"],
                    "html_message": message["html"],
                    "priority": "medium",
                }
                for to in recipients
            ]
        )
        ids = list(Email.objects.order_by("id").values_list("id", flat=True)[:n])
        if mode == "post-office-batch":

            def publish() -> None:
                app.send_task("post_office.tasks.send_queued_mail", queue=queues.NOTIFICATIONS)

        else:

            def publish() -> None:
                for email_id in ids:
                    app.send_task("bench.post_office_one", (email_id,), queue=queues.NOTIFICATIONS)

    started = time.monotonic()
    published, drained = drain_seconds(broker, publish, started=started, timeout=1800)
    if mode != "celery-email":
        from post_office.models import STATUS, Email

        left = Email.objects.exclude(status=STATUS.sent).count()
        Email.objects.all().delete()
    else:
        left = 0
    print(json.dumps({"mode": mode, "messages": n, "publish_seconds": published, "seconds": drained, "unsent": left}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
