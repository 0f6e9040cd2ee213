"""How fast the send service delivers, through a real SMTP server and a fake Twilio API on this machine.

Prints one table: per channel and mode, messages, wall time, messages per second, SMTP
sessions opened, and database queries per send. Uses its own SQLite file under var/.

    .venv/bin/python bench/notification_send.py [N]
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = ROOT / "var" / "bench-notifications.sqlite3"
os.environ.update(
    DJANGO_SETTINGS_MODULE="radgestmat.settings",
    DEBUG="1",
    DATABASE_URL=f"sqlite:///{DB}",
    NOTIFICATION_DRY_RUN="0",
    NOTIFICATION_REDIRECT_EMAIL="",
    NOTIFICATION_REDIRECT_PHONE="",
    LOG_LEVEL="WARNING",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CountingSink:
    def __init__(self):
        self.sessions = 0
        self.messages = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 OK"


def main(n: int) -> None:
    DB.parent.mkdir(exist_ok=True)
    DB.unlink(missing_ok=True)
    import django

    django.setup()
    from aiosmtpd.controller import Controller
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from pytest_httpserver import HTTPServer

    from assets.models import Attribution, Client, Materiel
    from notifications.channels.email import drop_connection
    from notifications.models import NotificationLog
    from notifications.sending import send_notification

    call_command("migrate", verbosity=0)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sink = CountingSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    twilio = HTTPServer(port=0)
    twilio.start()
    sid = "AC" + "0" * 32
    twilio.expect_request(f"/2010-04-01/Accounts/{sid}/Messages.json", method="POST").respond_with_json(
        {"sid": "SM" + "0" * 32, "status": "queued"}, status=201
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = sid, "token"
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.TWILIO_API_BASE_URL = twilio.url_for("/").rstrip("/")

    now = timezone.now()

    def plan(canal: str, count: int) -> list[int]:
        clients = Client.objects.bulk_create(
            Client(name=f"Client {i}", email=f"c{i}@example.org", phone="+33612345678") for i in range(count)
        )
        start = Materiel.objects.count()
        materiels = Materiel.objects.bulk_create(
            Materiel(code=f"B-{start + i:06d}", name="Bench", state="lent") for i in range(count)
        )
        loans = Attribution.objects.bulk_create(
            Attribution(
                client=c, materiel=m, date_debut=now, date_retour_prevue=now + timezone.timedelta(hours=3), duree="COURT"
            )
            for c, m in zip(clients, materiels)
        )
        rows = NotificationLog.objects.bulk_create(
            NotificationLog(attribution=loan, type_notification="CREATION", canal=canal, date_scheduled=now)
            for loan in loans
        )
        return [row.pk for row in rows]

    results = []
    for label, canal, fresh_connection in (
        ("email, one SMTP connection per process", "EMAIL", False),
        ("email, a new SMTP connection per message", "EMAIL", True),
        ("WhatsApp, fake Twilio over HTTP", "WHATSAPP", False),
    ):
        ids = plan(canal, n)
        sessions_before = sink.sessions
        drop_connection()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            for log_id in ids:
                if fresh_connection:
                    drop_connection()
                send_notification(log_id, now=now)
            elapsed = time.perf_counter() - started
        sent = NotificationLog.objects.filter(pk__in=ids, statut="ENVOYEE").count()
        assert sent == n, f"{label}: only {sent}/{n} sent"
        sessions = sink.sessions - sessions_before if canal == "EMAIL" else "-"
        results.append((label, n, elapsed, n / elapsed, sessions, len(queries) / n))

    smtp.stop()
    twilio.stop()
    print(f"{'mode':<44} {'messages':>8} {'seconds':>8} {'msg/s':>8} {'SMTP sessions':>14} {'queries/send':>13}")
    for label, count, elapsed, rate, sessions, per_send in results:
        print(f"{label:<44} {count:>8} {elapsed:>8.2f} {rate:>8.1f} {sessions!s:>14} {per_send:>13.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
