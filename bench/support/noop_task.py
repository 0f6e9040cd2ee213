"""The raw-Celery baseline of bench/delivery.py: a task that does nothing and stores no result.

Loaded into the benchmark's workers with ``-I bench.support.noop_task`` so that the
product's task modules carry no benchmark code. It takes the same options as
`tasks.send_notification` (acks_late, reject_on_worker_lost, ignore_result, the
same queue), so the two runs differ only in what the task body does.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="bench.noop", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def noop(log_id: int) -> None:
    return None
