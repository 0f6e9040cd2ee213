"""`scripts/test_notifications.py` and `scripts/test_whatsapp.py`, run as the spec's troubleshooting runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from radgestmat.testing.net import free_port
from radgestmat.testing.twilio import TWILIO_SID

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    """A migrated database of the scripts' own (they run outside the test database, as on an install)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scripts') / 'scripts.sqlite3'}"
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
    )
    return url


@pytest.fixture(autouse=True)
def script_database(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)


def run_script(name: str, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBUG": "1", "NOTIFICATION_DRY_RUN": "0", **env_vars}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, f"scripts/{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_test_notifications_sends_one_email(smtp_sink):
    result = run_script(
        "test_notifications.py", "camille@example.org", EMAIL_HOST=smtp_sink.host, EMAIL_PORT=str(smtp_sink.port)
    )
    assert result.returncode == 0, result.stderr
    assert f"EMAIL_HOST: {smtp_sink.host}" in result.stdout
    assert "Sent EMAIL to camille@example.org" in result.stdout
    assert [envelope.rcpt_tos for envelope in smtp_sink.envelopes] == [["camille@example.org"]]


def test_test_notifications_without_an_address_sends_to_the_first_admin(smtp_sink):
    result = run_script(
        "test_notifications.py",
        TEST_EMAIL="",
        ADMIN_EMAILS="ops@example.org,boss@example.org",
        EMAIL_HOST=smtp_sink.host,
        EMAIL_PORT=str(smtp_sink.port),
    )
    assert result.returncode == 0, result.stderr
    assert "Sent EMAIL to ops@example.org" in result.stdout
    assert [envelope.rcpt_tos for envelope in smtp_sink.envelopes] == [["ops@example.org"]]


def test_test_notifications_fails_in_one_line_when_the_server_is_down():
    result = run_script(
        "test_notifications.py", "camille@example.org", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(free_port())
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("FAILED: EMAIL to camille@example.org failed (transient)")


def test_test_whatsapp_sends_one_message(fake_twilio):
    fake_twilio.accept()
    result = run_script(
        "test_whatsapp.py",
        "+33612345678",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN="test-auth-token",
        TWILIO_WHATSAPP_FROM="+14155238886",
        TWILIO_API_BASE_URL=fake_twilio.server.url_for("/").rstrip("/"),
        PUBLIC_BASE_URL="https://radgestmat.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert "Sent WHATSAPP to +33612345678" in result.stdout
    [form] = fake_twilio.forms()
    assert form["To"] == "whatsapp:+33612345678"


def test_test_notifications_without_a_migrated_database_says_so(tmp_path):
    result = run_script(
        "test_notifications.py", "camille@example.org", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("FAILED: database: no such table") and line.endswith("(did `manage.py migrate` run?)")


def test_test_whatsapp_without_twilio_says_what_to_set():
    result = run_script("test_whatsapp.py", TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN="", TWILIO_WHATSAPP_FROM="")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "FAILED: Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_WHATSAPP_FROM in the environment"
    ]
