#!/usr/bin/env python
"""The original spec's email check: `python scripts/test_notifications.py [ADDRESS]`.

Shows the email configuration and sends one test message (a sample loan confirmation)
through the configured channel with `manage.py send_test_notification --email`. The address
is the argument, else `TEST_EMAIL`, else the first of `ADMIN_EMAILS`. Exits non-zero with
one line saying why on failure.
"""

from __future__ import annotations

import os
import sys

from _spec_check import fail, send_test, setup_django


def main() -> None:
    setup_django()
    from django.conf import settings

    def describe() -> list[str]:
        return [
            f"EMAIL_BACKEND: {settings.EMAIL_BACKEND}",
            f"EMAIL_HOST: {settings.EMAIL_HOST or '(none)'}  EMAIL_PORT: {settings.EMAIL_PORT}",
            f"DEFAULT_FROM_EMAIL: {settings.DEFAULT_FROM_EMAIL}",
        ]

    def target() -> dict[str, str]:
        to = (sys.argv[1] if len(sys.argv) > 1 else "") or os.environ.get("TEST_EMAIL", "")
        to = to or (settings.ADMINS[0][1] if settings.ADMINS else "")  # ADMINS is built from ADMIN_EMAILS
        if not to:
            fail("no address to send to: give one (scripts/test_notifications.py you@example.org) or set TEST_EMAIL")
        return {"email": to}

    send_test(describe, target)


if __name__ == "__main__":
    main()
