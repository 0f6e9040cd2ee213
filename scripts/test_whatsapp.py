#!/usr/bin/env python
"""The original spec's WhatsApp check: `python scripts/test_whatsapp.py [NUMBER]`.

Checks the Twilio configuration (credentials and sender from the environment) and sends one
test WhatsApp message with `manage.py send_test_notification --whatsapp`. The number is the
argument, else `TEST_WHATSAPP_NUMBER`, else `NOTIFICATION_REDIRECT_PHONE`. Exits non-zero
with one line saying why on failure.
"""

from __future__ import annotations

import os
import sys

from _spec_check import fail, send_test, setup_django


def main() -> None:
    setup_django()
    from django.conf import settings

    def describe() -> list[str]:
        missing = [
            name
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM")
            if not getattr(settings, name, "")
        ]
        if missing:
            fail(f"Twilio is not configured: set {', '.join(missing)} in the environment")
        return [
            f"TWILIO_ACCOUNT_SID: {settings.TWILIO_ACCOUNT_SID[:6]}…",
            f"TWILIO_WHATSAPP_FROM: {settings.TWILIO_WHATSAPP_FROM}",
        ]

    def target() -> dict[str, str]:
        to = (sys.argv[1] if len(sys.argv) > 1 else "") or os.environ.get("TEST_WHATSAPP_NUMBER", "")
        to = to or getattr(settings, "NOTIFICATION_REDIRECT_PHONE", "")
        if not to:
            fail("no number to send to: give one (scripts/test_whatsapp.py +33612345678) or set TEST_WHATSAPP_NUMBER")
        return {"whatsapp": to}

    send_test(describe, target)


if __name__ == "__main__":
    main()
