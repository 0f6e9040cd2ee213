"""One structured line per send attempt: JSON with LOG_FORMAT=json, contact details masked in every format."""

from __future__ import annotations

import json
import logging.config
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from notifications.sending import send_notification
from radgestmat.logging import logging_config, mask_personal_data

from .conftest import make_log

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project_logging(capsys):
    """The project's LOGGING, as settings build it, writing to the captured stderr."""

    def configure(log_format: str):
        logging.config.dictConfig(logging_config(log_format=log_format, level="INFO"))

    yield configure
    logging.config.dictConfig(django_settings.LOGGING)


def lines_of(capsys, logger: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if logger in line]


def test_a_whatsapp_send_is_one_json_line_with_the_attempts_fields(fake_twilio, project_logging, capsys):
    project_logging("json")
    fake_twilio.accept()
    log = make_log("CREATION", "WHATSAPP", email="", phone="+33612345678")

    send_notification(log.pk, now=timezone.now())

    [line] = [json.loads(line) for line in lines_of(capsys, '"radgestmat.notifications"')]
    assert line["level"] == "INFO" and line["logger"] == "radgestmat.notifications"
    assert {k: line[k] for k in ("log_id", "attribution_id", "type", "channel", "status", "attempt")} == {
        "log_id": log.pk,
        "attribution_id": log.attribution_id,
        "type": "CREATION",
        "channel": "WHATSAPP",
        "status": "ENVOYEE",
        "attempt": 1,
    }
    assert line["provider_id"].startswith("SM") and isinstance(line["duration_ms"], int)
    assert line["ts"].endswith("+00:00") and line["pid"] == os.getpid()
    assert "+33612345678" not in json.dumps(line)


def test_contact_details_are_masked_in_plain_text_too(project_logging, capsys):
    project_logging("plain")

    logging.getLogger("radgestmat.test").warning(
        "could not reach %s or %s", "camille.dupont@example.org", "+33 6 12 34 56 78", extra={"to": "+33612345678"}
    )

    [line] = lines_of(capsys, "radgestmat.test")
    assert "camille.dupont@example.org" not in line and "12 34 56" not in line
    assert "c***@example.org" in line


def test_broken_addresses_are_masked_and_data_cannot_forge_a_log_line(project_logging, capsys):
    """Bad input (a legacy import) is personal data too, and a CR/LF in it stays inside its own line."""
    project_logging("plain")

    logging.getLogger("radgestmat.test").warning(
        "invalid: %s, %s; name %s",
        "jean.dupont321@@example.org",
        "accueil341@localhost",
        "Eve\r\n2026-11-24 04:00:00 INFO radgestmat.audit admin logged in",
    )

    output = capsys.readouterr().err.splitlines()
    [line] = [row for row in output if "radgestmat.test" in row]
    assert "dupont321" not in line and "accueil341" not in line
    assert "j***@example.org" in line and "a***@localhost" in line
    assert "Eve\\r\\n2026-11-24" in line
    assert not [row for row in output if row.startswith("2026-11-24 04:00:00 INFO radgestmat.audit")]


def test_celery_node_names_of_this_host_stay_readable():
    node = f"worker1@{socket.gethostname()}"
    assert mask_personal_data(f"{node} ready.") == f"{node} ready."


def test_masking_leaves_dates_ids_and_durations_alone():
    text = "log 123456789 at 2026-11-24 02:10:00, took 1500 ms, SID SM0123456789abcdef"
    assert mask_personal_data(text) == text


def test_log_format_json_is_what_the_settings_select():
    """GIVEN LOG_FORMAT=json in the environment, THEN a fresh process logs JSON lines with the extra fields."""
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "radgestmat.settings", "DEBUG": "1"}
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('radgestmat.notifications').info('sent', extra={'log_id': 7, 'channel': 'EMAIL'})"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["message"], line["log_id"], line["channel"]) == ("sent", 7, "EMAIL")
