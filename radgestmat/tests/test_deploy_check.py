"""`manage.py check --deploy` under production settings (deploy/radgestmat.env.example, filled in) is clean."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    """The shipped deploy/radgestmat.env.example, with its blanks filled as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "EMAIL_", "TWILIO_"))}
    for line in (ROOT / "deploy" / "radgestmat.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    env.update(
        DJANGO_SETTINGS_MODULE="radgestmat.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        EMAIL_HOST_PASSWORD="smtp-password",
        FLOWER_BASIC_AUTH="ops:flower-password",
        TWILIO_ACCOUNT_SID="AC00000000000000000000000000000000",
        TWILIO_AUTH_TOKEN="0123456789abcdef0123456789abcdef",
        TWILIO_WHATSAPP_FROM="+14155238886",
        # This machine's test services instead of the example's hosts.
        DATABASE_URL=os.environ.get("DATABASE_URL", "sqlite:///" + str(ROOT / "var" / "deploy-check.sqlite3")),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
    )
    env.update(overrides)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
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


def test_flower_without_credentials_or_with_weak_ones_is_reported():
    """GIVEN the shipped env example as is (FLOWER_BASIC_AUTH empty, nginx proxying /flower/), or `a:b`,
    or a short password, THEN check --deploy warns, without quoting the password."""
    for basic_auth, words in (("", "FLOWER_BASIC_AUTH"), ("a:b", "shorter than 12"), ("ops:password1234", "too easy")):
        result = check_deploy(production_env(FLOWER_BASIC_AUTH=basic_auth))

        output = result.stdout + result.stderr
        assert result.returncode != 0 and "radgestmat.W030" in output, (basic_auth, output)
        assert words in output
    assert "password1234" not in output
