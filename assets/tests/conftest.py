"""Fixtures of the lending app's tests."""

from __future__ import annotations

import pytest


def forget_borrower_counters() -> None:
    """Drop the borrower pages' rate-limit counters from the real Redis cache (and nothing else of it)."""
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]  # RedisCache: the redis-py client
    for key in client.scan_iter(match=f"{cache.key_prefix}:*:borrower:*"):
        client.delete(key)


@pytest.fixture
def fresh_borrower_counters():
    forget_borrower_counters()
    yield
    forget_borrower_counters()
