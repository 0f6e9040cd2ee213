"""Exceptions shared with `tasks/` (importable before the app registry is ready: no models here)."""

from __future__ import annotations


class RetryLater(Exception):
    """A transient failure was recorded and attempts remain: run the task again in ``retry_in`` seconds."""

    def __init__(self, reason: str, retry_in: float):
        super().__init__(reason)
        self.retry_in = retry_in
