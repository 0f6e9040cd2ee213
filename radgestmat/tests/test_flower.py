"""Flower, started as the Procfile starts it, on a free port against a Redis of our own: no password, no entry."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from radgestmat.tests.servers import free_port, redis_server, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "flower.py"
CREDENTIALS = "ops:flower-test-password"


def get(url: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def flower_env(redis_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DJANGO_SETTINGS"))}
    env.pop("CELERY_BROKER_URL", None)
    env.update(DEBUG="1", REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", **extra)
    return env


@pytest.fixture
def flower(tmp_path):
    with redis_server(tmp_path) as (_, redis_port):
        port = free_port()
        env = flower_env(
            redis_port,
            FLOWER_PORT=str(port),
            FLOWER_BASIC_AUTH=CREDENTIALS,
            FLOWER_UNAUTHENTICATED_API="true",  # must be ignored
            FLOWER_URL="http://127.0.0.1/flower/",  # the UI's setting: Flower must not choke on it
        )
        log = (tmp_path / "flower.log").open("w")
        proc = subprocess.Popen([sys.executable, str(LAUNCHER)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/flower"
        try:
            wait_until(lambda: proc.poll() is None and get(f"{base}/healthcheck") == 200, what="flower", timeout=60)
        except AssertionError:
            stop(proc)
            raise AssertionError((tmp_path / "flower.log").read_text()[-3000:])
        yield base
        stop(proc)


def test_flower_refuses_requests_without_credentials(flower):
    assert get(f"{flower}/") == 401
    assert get(f"{flower}/workers") == 401
    assert get(f"{flower}/api/workers") == 401
    assert get(f"{flower}/", "ops:wrong-password") == 401


def test_flower_answers_with_credentials(flower):
    assert get(f"{flower}/", CREDENTIALS) == 200
    assert get(f"{flower}/api/workers", CREDENTIALS) == 200


def test_the_launcher_will_not_listen_on_a_public_interface_without_a_password():
    env = flower_env(1, FLOWER_ADDRESS="0.0.0.0", FLOWER_PORT=str(free_port()))

    result = subprocess.run([sys.executable, str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=30)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "flower: refusing to listen on 0.0.0.0 without FLOWER_BASIC_AUTH (user:password); "
        "set it, or bind FLOWER_ADDRESS=127.0.0.1 for development."
    ]


def test_the_launcher_rejects_malformed_credentials():
    env = flower_env(1, FLOWER_ADDRESS="0.0.0.0", FLOWER_BASIC_AUTH="just-a-password")

    result = subprocess.run([sys.executable, str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=30)

    assert result.returncode != 0
    assert "user:password" in result.stderr
    assert "just-a-password" not in result.stderr
