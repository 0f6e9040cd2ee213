"""Drills on the workers themselves."""

from __future__ import annotations

import time

from bench.faults.lab import Lab, drill
from bench.stack import wait_until


@drill("worker-killed", "A worker killed with SIGKILL mid-send, then a new one started", quick=True)
def worker_killed(lab: Lab) -> dict:
    stack = lab.stack
    stack.beat()
    first = stack.worker("first", concurrency=2)
    started = time.monotonic()
    root_ids = lab.lend(200)
    wait_until(lambda: stack.smtp.count + stack.twilio.count >= 40, what="the first sends", timeout=60)
    first.kill()
    sent_at_kill = stack.smtp.count + stack.twilio.count
    stack.worker("second", concurrency=2)
    result = lab.settle(root_ids, started)
    result["notes"] = f"killed after {sent_at_kill} messages"
    return result


@drill("worker-killed-group", "A worker killed with SIGKILL while sending one message for several items", quick=True)
def worker_killed_group(lab: Lab) -> dict:
    """Borrowers take three items at once: one message per borrower and channel lists them. The SMTP
    server is slow, so the kill lands while groups are in flight; every row of a group must then end
    in the same state: sent once (with the others) or given up with a reason, never sent twice."""
    from django.db.models import Count

    from notifications.models import NotificationLog

    stack = lab.stack
    stack.smtp.delay = 0.3
    stack.beat()
    first = stack.worker("first", concurrency=2)
    started = time.monotonic()
    root_ids = lab.lend_groups(40, 3)
    wait_until(lambda: stack.smtp.count + stack.twilio.count >= 10, what="the first group sends", timeout=60)
    first.kill()
    sent_at_kill = stack.smtp.count + stack.twilio.count
    stack.smtp.delay = 0.0
    stack.worker("second", concurrency=2)
    result = lab.settle(root_ids, started)
    # Every group is sent as one message: rows sharing a provider id, three per borrower and channel.
    shared = (
        NotificationLog.objects.filter(pk__in=root_ids)
        .exclude(provider_message_id="")
        .values("provider_message_id")
        .annotate(n=Count("id"))
    )
    sizes = sorted({row["n"] for row in shared})
    messages = stack.smtp.count + stack.twilio.count
    problems = [] if sizes in ([3], []) else [f"groups sent with {sizes} rows, not 3"]
    result.update(
        problems=problems,
        messages=messages,
        notes=f"killed after {sent_at_kill} messages; {messages} messages for {len(root_ids)} rows",
    )
    return result
