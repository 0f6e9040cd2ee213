"""Counting requests in a fixed window in the cache (Redis in production): login throttling and the borrower pages."""

from __future__ import annotations

from django.core.cache import cache


def hit(key: str, window_seconds: int) -> int:
    """Count one more request under ``key`` and return the count in the current window.

    add() starts the window at the first request; incr() is atomic in Redis and keeps the
    expiry, so parallel requests each get their own count. Raises whatever the cache raises
    when it is unreachable: the caller decides whether to step aside.
    """
    if cache.add(key, 1, window_seconds):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        return 1 if cache.add(key, 1, window_seconds) else cache.incr(key)
