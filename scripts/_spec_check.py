"""What `scripts/test_notifications.py` and `scripts/test_whatsapp.py` share: start Django, send one test message
through `manage.py send_test_notification`, print the outcome; one clear line and a non-zero exit on failure."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fail(message: str, status: int = 1) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(status)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radgestmat.settings")
    try:
        import django
    except ImportError:
        fail(f"Django is not installed for {sys.executable}: run it with {ROOT / '.venv/bin/python'}")
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as error:
        fail(f"configuration: {error}")


def send_test(describe: Callable[[], list[str]], target: Callable[[], dict[str, str]]) -> None:
    """Print the configuration lines, then send one message to ``target()`` (send_test_notification's options)."""
    from django.core.management import CommandError, call_command
    from django.db import DatabaseError

    for line in describe():
        print(line)
    options = target()
    try:
        call_command("send_test_notification", **options)
    except CommandError as error:
        fail(str(error))
    except DatabaseError as error:
        fail(f"database: {str(error).splitlines()[0]} (did `manage.py migrate` run?)")
    print("OK")
