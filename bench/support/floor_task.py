"""The floor of bench/delivery.py: what any sender that keeps issue 18's constraints must do per notification,
and nothing more. It bounds from above what our pipeline can reach on the machine of the run.

One task per notification with the options of `tasks.send_notification` (acks_late, reject_on_worker_lost,
no result), and in its body only:

1. the claim, our one statement (`notifications.digest.claim`, with the database's clock);
2. the "may be accepted" mark just before the end of DATA (`notifications.channels.email.mark_maybe_accepted`),
   without which a worker killed after the server's "250" makes a duplicate;
3. one message on the process's kept SMTP connection: the message the peers send (the same subject, text and
   HTML, built once per process), with the row's id and Message-ID in its headers;
4. the audit row's outcome: ENVOYEE, one UPDATE of the claimed rows (`radgestmat.compiled.update_by_ids`).

No load of the loan, no rendering for the borrower, no .ics, no personal link: what our pipeline does beyond
this floor is the product's own work. Loaded with ``-I bench.support.floor_task`` into a worker with the
product's settings; BENCH_SAMPLE_MESSAGE names the sample's JSON (`bench.delivery.sample_message`).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

from celery import shared_task

# Stands for the row id in the message built once; replaced in each send.
ROW_MARK = "FLOOR-ROW-ID"


@functools.cache
def message_bytes() -> bytes:
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives

    sample = json.loads(Path(os.environ["BENCH_SAMPLE_MESSAGE"]).read_text())
    email = EmailMultiAlternatives(
        sample["subject"],
        sample["body"],
        settings.DEFAULT_FROM_EMAIL,
        ["floor@example.org"],
        headers={"Message-ID": f"<floor.{ROW_MARK}@example.org>", "X-RadGestMat-Notification": ROW_MARK},
    )
    email.attach_alternative(sample["html"], "text/html")
    return email.message().as_bytes(linesep="\r\n")


@shared_task(name="bench.floor_send", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def floor_send(log_id: int) -> None:
    from django.conf import settings

    from notifications import sending
    from notifications.channels import email
    from notifications.models import NotificationLog, Statut
    from radgestmat.compiled import update_by_ids

    ids, now = sending.claim_group(log_id)
    if not ids:
        return
    smtp = email.shared_connection().connection
    smtp.data_started = False
    smtp.before_end_of_data = lambda: email.mark_maybe_accepted(ids)
    smtp.sendmail(
        settings.DEFAULT_FROM_EMAIL, ["floor@example.org"], message_bytes().replace(ROW_MARK.encode(), b"%d" % log_id)
    )
    email._local.used_at = time.monotonic()  # in steady use: no NOOP before the next message, as in ours
    update_by_ids(
        NotificationLog,
        ids,
        only={"statut": Statut.EN_COURS},
        values={
            "statut": Statut.ENVOYEE,
            "date_envoi": now,
            "provider_message_id": f"floor.{log_id}",
            "erreur_code": "",
        },
    )
