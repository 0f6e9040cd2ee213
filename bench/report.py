"""What every bench shares: its scratch database, the machine and versions it prints first, and the JSON it writes.

Benches run on PostgreSQL and Redis on this machine, as production would. Each uses
a database of its own (created on demand) unless BENCH_DATABASE_URL names one.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"


def bench_database_url(name: str) -> str:
    """BENCH_DATABASE_URL, or a database ``name`` on the local PostgreSQL, created if missing.

    Exits with one line saying what to do when PostgreSQL does not answer.
    """
    if os.environ.get("BENCH_DATABASE_URL"):
        return os.environ["BENCH_DATABASE_URL"]
    import psycopg

    try:
        with psycopg.connect(f"{LOCAL_POSTGRES}/postgres", autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        sys.exit(
            f"bench: PostgreSQL at {LOCAL_POSTGRES} does not answer ({str(exc).strip().splitlines()[0]}); "
            "start it or set BENCH_DATABASE_URL"
        )
    return f"{LOCAL_POSTGRES}/{name}"


def environment() -> dict:
    """The machine and the versions (call after django.setup())."""
    import celery
    import django
    import kombu
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = "PostgreSQL " + cursor.fetchone()[0].split()[0]
        else:
            database = f"{connection.vendor} {connection.Database.sqlite_version}"
    try:
        import redis

        redis_version = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).info("server")[
            "redis_version"
        ]
    except Exception as exc:  # a bench that does not use Redis still runs
        redis_version = f"unreachable ({type(exc).__name__})"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "database": database,
        "redis": redis_version,
    }


def print_environment(env: dict) -> None:
    print(
        f"{env['cores']} cores (load {env['load_average']:.2f}), Python {env['python']}, Django {env['django']}, "
        f"Celery {env['celery']}, kombu {env['kombu']}, {env['database']}, Redis {env['redis']}",
        flush=True,
    )


def write_json(name: str, env: dict, results) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"environment": env, "results": results}, indent=2, default=str) + "\n")
    print(f"results written to {path.relative_to(ROOT)}")
    return path
