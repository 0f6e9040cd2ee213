"""Django's Redis cache, reaching the current master through Redis Sentinel.

Used automatically when the cache URL is a Sentinel one, in the same form kombu
accepts for the broker (``sentinel://[:password@]host:26379;sentinel://host2:26379/0``,
master name from ``REDIS_SENTINEL_MASTER``), so one ``REDIS_URL`` serves both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SentinelRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, master_name: str = "", sentinel_kwargs: dict | None = None, **options):
        if not master_name:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured("A sentinel:// cache URL needs REDIS_SENTINEL_MASTER (the master's name).")
        super().__init__(servers, **options)
        self._master_name = master_name
        self._sentinel_kwargs = sentinel_kwargs or {}

    def _get_connection_pool(self, write):
        if "sentinel" not in self._pools:
            from redis.sentinel import Sentinel, SentinelConnectionPool

            parts = [urlsplit(server) for server in self._servers]
            nodes = [(part.hostname or "127.0.0.1", part.port or 26379) for part in parts]
            db = int((parts[-1].path or "/0").strip("/") or 0)
            options = {k: v for k, v in self._pool_options.items() if k != "parser_class"}
            manager = Sentinel(nodes, sentinel_kwargs=self._sentinel_kwargs, **options)
            self._pools["sentinel"] = SentinelConnectionPool(
                self._master_name,
                manager,
                db=db,
                username=parts[0].username,
                password=parts[0].password,
                **options,
            )
        return self._pools["sentinel"]


class SentinelRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SentinelRedisCacheClient
