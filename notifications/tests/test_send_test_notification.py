"""`manage.py send_test_notification`: one real message, the outcome printed, non-zero exit on failure."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


def test_it_sends_a_test_email_over_smtp(smtp_sink, capsys):
    call_command("send_test_notification", "--email", "ops@example.org", "--language", "en")

    [message] = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["ops@example.org"]
    assert message["Subject"].startswith("[Test] Loan confirmed: ")
    out = capsys.readouterr().out
    assert out.startswith("Sent EMAIL to ops@example.org: provider id ")


def test_it_sends_a_test_whatsapp_and_prints_the_sid(fake_twilio, capsys):
    fake_twilio.accept()

    call_command("send_test_notification", "--whatsapp", "06 12 34 56 78")

    assert fake_twilio.forms()[0]["To"] == "whatsapp:+33612345678"
    assert "provider id SM" in capsys.readouterr().out


def test_a_refused_sms_is_reported_as_an_error(fake_twilio):
    fake_twilio.fail(400, 21211, "The 'To' number is not a valid phone number.")

    with pytest.raises(CommandError, match=r"SMS to \+33612345678 failed \(permanent\): Twilio HTTP 400, error 21211"):
        call_command("send_test_notification", "--sms", "+33612345678")


def test_dry_run_sends_nothing(smtp_sink, settings, capsys):
    settings.NOTIFICATION_DRY_RUN = True

    call_command("send_test_notification", "--email", "ops@example.org")

    assert smtp_sink.messages == []
    assert capsys.readouterr().out.startswith(
        "Dry run (NOTIFICATION_DRY_RUN=1): nothing sent. EMAIL to o***@example.org"
    )


def test_bad_input_exits_non_zero_with_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "send_test_notification", "--whatsapp", "12"],
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "DEBUG": "1", "TWILIO_ACCOUNT_SID": "", "DATABASE_URL": "sqlite:///:memory:"},
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: WHATSAPP to 12 failed (permanent): “12” is not a valid phone number "
        "(use the international form, e.g. +33 6 12 34 56 78)."
    ]
