"""`manage.py check` warns when the broker's Redis may evict keys (a real redis-server with each policy)."""

from __future__ import annotations

import redis

from notifications.system_checks import check_redis_eviction_policy
from radgestmat.testing.redis import redis_server


def test_an_evicting_redis_is_reported_and_noeviction_is_not(tmp_path, settings):
    with redis_server(tmp_path) as (_, port):
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
        assert check_redis_eviction_policy() == []

        redis.Redis(port=port).config_set("maxmemory-policy", "allkeys-lru")
        [warning] = check_redis_eviction_policy()

    assert warning.id == "radgestmat.W021" and "allkeys-lru" in warning.msg


def test_an_unreachable_redis_is_not_this_checks_business(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert check_redis_eviction_policy() == []
