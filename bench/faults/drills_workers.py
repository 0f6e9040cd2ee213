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
