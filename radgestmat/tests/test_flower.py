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

from radgestmat.testing.net import free_port, wait_until
from radgestmat.testing.processes import stop_process as stop
from radgestmat.testing.redis import redis_server

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
            raise AssertionError((tmp_path / "flower.log").read_text()[-3000:]) from None
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


def launch(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=30)


def shipped_env(**overrides: str) -> dict[str, str]:
    """deploy/radgestmat.env.example's Flower lines as shipped (FLOWER_BASIC_AUTH empty), then ``overrides``."""
    env = flower_env(1)
    for line in (ROOT / "deploy" / "radgestmat.env.example").read_text().splitlines():
        if line.startswith("FLOWER_"):
            key, _, value = line.partition("=")
            env[key] = value
    env.update(FLOWER_PORT=str(free_port()), **overrides)
    return env


def test_the_shipped_env_cannot_start_an_open_flower():
    """GIVEN the env example as shipped: Flower on 127.0.0.1 (where nginx forwards /flower/ from the
    Internet) and no password, THEN the launcher refuses to start, in one line."""
    env = shipped_env()
    assert env["FLOWER_ADDRESS"] == "127.0.0.1" and env["FLOWER_BASIC_AUTH"] == ""
    assert "proxy_pass http://radgestmat_flower" in (ROOT / "deploy" / "nginx" / "radgestmat.conf").read_text()

    result = launch(env)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        (
            "flower: refusing to start without FLOWER_BASIC_AUTH (user:password): behind the nginx site (/flower/) "
            "it would be open to anyone; set it, or FLOWER_LOCAL_ONLY=1 for a Flower on 127.0.0.1 that no proxy forwards to."
        )
    ]


def test_the_launcher_will_not_listen_on_a_public_interface_without_a_password():
    for extra in ({}, {"FLOWER_LOCAL_ONLY": "1"}):
        result = launch(shipped_env(FLOWER_ADDRESS="0.0.0.0", **extra))

        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1 and "FLOWER_BASIC_AUTH" in result.stderr


def test_the_launcher_refuses_weak_credentials_without_quoting_them():
    for weak in ("a:b", "ops:short-pw", "ops:password1234", "admin:admin-admin-admin", "ops:aaaaaaaaaaaaaaaa"):
        result = launch(shipped_env(FLOWER_BASIC_AUTH=weak))

        assert result.returncode != 0, weak
        assert result.stderr.startswith("flower: weak FLOWER_BASIC_AUTH"), result.stderr
        password = weak.partition(":")[2]
        if len(password) >= 8:
            assert password not in result.stderr


def test_the_launcher_rejects_malformed_credentials():
    env = flower_env(1, FLOWER_ADDRESS="0.0.0.0", FLOWER_BASIC_AUTH="just-a-password")

    result = launch(env)

    assert result.returncode != 0
    assert "user:password" in result.stderr
    assert "just-a-password" not in result.stderr


REDIS_PASSWORD = "Redis-pw-4e1b7d90"


def body(url: str, credentials: str | None = CREDENTIALS) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def test_no_flower_page_shows_the_redis_password(tmp_path):
    """GIVEN a real worker and Flower, started as the Procfile starts them, on a password-protected
    redis-server (REDIS_URL, hence CELERY_BROKER_URL and CACHES, hold the password), THEN no page
    Flower serves, the worker's "Config" tab included, contains the password."""
    import json
    import signal

    with redis_server(tmp_path, password=REDIS_PASSWORD) as (_, redis_port):
        env = flower_env(redis_port)
        env.update(
            REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0",
            DATABASE_URL=f"sqlite:///{tmp_path / 'flower.sqlite3'}",
            WORKER_CONCURRENCY="1",
            PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        worker_line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
        port = free_port()
        logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("worker", "flower")}
        worker = subprocess.Popen(
            ["bash", "-c", "exec " + worker_line.partition(":")[2].strip() + " -n flowertest@%h"],
            cwd=ROOT,
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        flower = subprocess.Popen(
            [sys.executable, str(LAUNCHER)],
            cwd=ROOT,
            env={**env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": CREDENTIALS},
            stdout=logs["flower"],
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}/flower"
        try:

            def worker_known():
                status, text = body(f"{base}/api/workers?refresh=1")
                names = [name for name in json.loads(text) if name.startswith("flowertest@")] if status == 200 else []
                return names[0] if names else None

            try:
                name = wait_until(worker_known, what="the worker, seen by flower", timeout=90)
            except AssertionError:
                raise AssertionError({n: (tmp_path / f"{n}.log").read_text()[-2000:] for n in logs}) from None
            pages = {
                path: body(base + path)
                for path in (
                    "/",
                    "/workers",
                    f"/worker/{name}",
                    "/tasks",
                    "/broker",
                    (
                        "/tasks/datatable?draw=1&start=0&length=10&search%5Bvalue%5D=&order%5B0%5D%5Bcolumn%5D=0"
                        "&columns%5B0%5D%5Bdata%5D=name&order%5B0%5D%5Bdir%5D=asc"
                    ),
                    "/api/workers",
                    "/api/workers?refresh=1",
                    f"/api/workers?workername={name}&refresh=1",
                    "/api/tasks",
                    "/api/task/types",
                    "/api/queues/length",
                    "/metrics",
                    "/healthcheck",
                )
            }
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            stop(flower)
            worker.wait(30)

    worker_page = pages[f"/worker/{name}"][1]
    assert pages[f"/worker/{name}"][0] == 200
    assert "CELERY_TASK_ACKS_LATE" in worker_page and "CACHES" in worker_page  # the Config tab is there
    assert "redis://:********@127.0.0.1" in worker_page
    for path, (status, text) in pages.items():
        assert status == 200, (path, status, text[:300])
        assert REDIS_PASSWORD not in text, f"the Redis password is on {path}"
    assert REDIS_PASSWORD not in (tmp_path / "flower.log").read_text()
