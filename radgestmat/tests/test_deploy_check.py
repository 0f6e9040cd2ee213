"""`manage.py check --deploy` under production settings (the variables of deploy/radgestmat.env.example) is clean."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "EMAIL_", "TWILIO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="radgestmat.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="radgestmat.example.org",
        CSRF_TRUSTED_ORIGINS="https://radgestmat.example.org",
        PUBLIC_BASE_URL="https://radgestmat.example.org",
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT="587",
        EMAIL_USE_TLS="1",
        EMAIL_HOST_USER="radgestmat",
        EMAIL_HOST_PASSWORD="smtp-password",
        DEFAULT_FROM_EMAIL="RadGestMat <pret@example.org>",
        ADMIN_EMAILS="ops@example.org",
        TWILIO_ACCOUNT_SID="AC00000000000000000000000000000000",
        TWILIO_AUTH_TOKEN="0123456789abcdef0123456789abcdef",
        TWILIO_WHATSAPP_FROM="+14155238886",
    )
    env.update(overrides)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_production_settings_pass_check_deploy_without_a_warning():
    result = check_deploy(production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_weakened_settings_are_reported():
    """GIVEN production settings with HSTS off, no SMTP and half of Twilio, THEN check --deploy names each problem."""
    env = production_env(SECURE_HSTS_SECONDS="0", EMAIL_HOST="", TWILIO_WHATSAPP_FROM="")

    result = check_deploy(env)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    for check_id in ("security.W004", "radgestmat.W001", "radgestmat.W010"):
        assert check_id in output
    assert "TWILIO_WHATSAPP_FROM" in output
    assert env["TWILIO_AUTH_TOKEN"] not in output and env["SECRET_KEY"] not in output
