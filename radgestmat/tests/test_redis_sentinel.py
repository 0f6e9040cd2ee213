"""A `sentinel://` REDIS_URL reaches the master through a real Redis Sentinel, for the broker and the cache alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from radgestmat.testing.net import free_port, wait_until
from radgestmat.testing.processes import stop_process as stop
from radgestmat.testing.redis import redis_binary, redis_server

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django, json
django.setup()
from django.core.cache import cache
from notifications.scheduler_status import broker_status
from radgestmat.celery import app, broker_connection

cache.set("sentinel-probe", 42, 60)
with broker_connection() as conn:
    conn.ensure_connection(max_retries=1, timeout=5)
    conn.default_channel.client.lpush("sentinel-probe-queue", "hello")
workers, queues, beats = broker_status(0.5)
print(json.dumps({"cached": cache.get("sentinel-probe"), "queues_ok": queues["ok"],
                  "master_name": app.conf.broker_transport_options.get("master_name")}))
"""


def test_broker_and_cache_find_the_master_through_sentinel(tmp_path):
    binary = redis_binary()
    with redis_server(tmp_path) as (_, master_port):
        sentinel_port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor rgm 127.0.0.1 {master_port} 1\n"
        )
        sentinel = subprocess.Popen(
            [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(
                lambda: redis.Redis(port=sentinel_port).execute_command("SENTINEL", "get-master-addr-by-name", "rgm"),
                what="sentinel",
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "CACHE_", "DJANGO_SETTINGS"))}
            env.update(
                DEBUG="1",
                DJANGO_SETTINGS_MODULE="radgestmat.settings",
                REDIS_URL=f"sentinel://127.0.0.1:{sentinel_port}/0",
                REDIS_SENTINEL_MASTER="rgm",
            )
            result = subprocess.run(
                [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr[-3000:]

            probe = json.loads(result.stdout.strip().splitlines()[-1])
            assert probe == {"cached": 42, "queues_ok": True, "master_name": "rgm"}
            master = redis.Redis(port=master_port)
            assert master.lrange("sentinel-probe-queue", 0, -1) == [b"hello"]
            assert any(b"sentinel-probe" in key for key in master.keys("radgestmat:*"))
        finally:
            stop(sentinel)
