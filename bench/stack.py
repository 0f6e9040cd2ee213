"""A whole RadGestMat on this machine, for the benches and the fault drills.

Throwaway PostgreSQL and Redis servers that a drill may stop and restart, an SMTP
sink (aiosmtpd) and a fake Twilio Messages API that record every message they
accept and can be told to fail, worker and beat processes started as in
production (`celery -A radgestmat ...`), and the ledger that counts, for a known
set of notifications, which went out once, twice, never, or failed with a reason.

The driving script calls `Stack.use_here()` before setting Django up, so that its
own ORM work goes to the same database as the workers'.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from radgestmat import queues as queues_
from radgestmat.testing import net
from radgestmat.testing.net import ServerError as StackError
from radgestmat.testing.net import free_port, port_open
from radgestmat.testing.postgres import PostgresServer
from radgestmat.testing.processes import (
    Proc,
    celery_beat_command,
    celery_worker_command,
)
from radgestmat.testing.redis import RedisServer
from radgestmat.testing.smtp import SmtpSink
from radgestmat.testing.twilio import (
    MESSAGES_PATH,
    TWILIO_SID,
    FakeTwilio,
    TwilioFault,
    valid_number,
)

__all__ = [
    "MESSAGES_PATH",
    "ROOT",
    "TWILIO_SID",
    "TWILIO_TOKEN",
    "FakeTwilio",
    "PostgresServer",
    "Proc",
    "RedisServer",
    "Servers",
    "SmtpSink",
    "Stack",
    "StackError",
    "Tally",
    "TwilioFault",
    "free_port",
    "port_open",
    "tally",
    "temporary_workdir",
    "throwaway_stack",
    "unsettled",
    "valid_number",
    "wait_settled",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent
TWILIO_TOKEN = "bench-auth-token"

# The test kit's wait, failing with the bench's error: a part of the stack that did not start.
wait_until = functools.partial(net.wait_until, error=StackError)


@dataclass
class Stack:
    """Where everything runs: the URLs the processes share and the servers the drills can break."""

    workdir: Path
    database_url: str
    broker_url: str
    smtp: SmtpSink
    twilio: FakeTwilio
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[Proc] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="radgestmat.settings",
            DEBUG="0",
            SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.broker_url,
            CELERY_BROKER_URL=self.broker_url,
            CACHE_URL=self.broker_url,
            EMAIL_BACKEND="notifications.channels.smtp_backend.PatientEmailBackend",
            EMAIL_HOST=self.smtp.host,
            EMAIL_PORT=str(self.smtp.port),
            EMAIL_USE_TLS="0",
            EMAIL_TIMEOUT="5",
            DEFAULT_FROM_EMAIL="RadGestMat <pret@example.org>",
            TWILIO_ACCOUNT_SID=TWILIO_SID,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            TWILIO_WHATSAPP_FROM="+14155238886",
            TWILIO_SMS_FROM="+15005550006",
            TWILIO_API_BASE_URL=self.twilio.url,
            TWILIO_TIMEOUT="5",
            WHATSAPP_ENABLED="1",
            PUBLIC_BASE_URL="https://radgestmat.example.org",
            NOTIFICATION_DRY_RUN="0",
            NOTIFICATION_REDIRECT_EMAIL="",
            NOTIFICATION_REDIRECT_PHONE="",
            LOG_LEVEL="INFO",
        )
        env.update(self.settings)
        return env

    def _spawn(self, name: str, command: list[str], *, wrap: Callable[[list[str]], list[str]] | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(list(self.workdir.glob('*.log')))}.log"  # unique across drills
        with open(log, "w") as out:
            popen = subprocess.Popen(
                wrap(command) if wrap else command,
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.processes.append(proc)
        return proc

    def worker(
        self,
        name: str,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str = queues_.WORKER_QUEUES,
        extra_args: tuple[str, ...] = (),
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Proc:
        """``wrap`` turns the command line into another, e.g. run inside a network namespace (`Machine.wrap`)."""
        return self._spawn(
            name,
            celery_worker_command(name, pool=pool, concurrency=concurrency, queues=queues, extra_args=extra_args),
            wrap=wrap,
        )

    def beat(self, name: str = "beat") -> Proc:
        pidfile = str(self.workdir / f"{name}-{len(self.processes)}.pid")
        return self._spawn(name, celery_beat_command("radgestmat.beat_scheduler:DatabaseScheduler", pidfile=pidfile))

    def web(self, name: str = "web", *, workers: int = 2) -> Proc:
        """gunicorn as the Procfile starts it, on a free port, once its static files are collected (the release step).

        Plain HTTP on 127.0.0.1 with no TLS proxy in front: no HTTPS redirect, cookies not marked secure.
        """
        plain_http = {
            "BEHIND_TLS_PROXY": "0",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput"],
            check=False,
            cwd=ROOT,
            env={**self.env(), **plain_http},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"collectstatic failed: {(result.stderr or result.stdout).strip()[-300:]}")
        port = free_port()
        saved = self.settings
        self.settings = {**saved, **plain_http}
        try:
            proc = self._spawn(
                name,
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "radgestmat.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--access-logfile",
                    "-",
                ],
            )
        finally:
            self.settings = saved
        proc.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: port_open(port) or not proc.alive(), what=f"gunicorn on port {port} to listen")
        if not proc.alive():
            raise StackError(f"gunicorn exited: {proc.output()[-300:]}")
        return proc

    def use_here(self) -> None:
        """Point this process's Django at the stack, with the workers' settings (call before django.setup())."""
        os.environ.update(self.env(), LOG_LEVEL="WARNING")
        sys.path.insert(0, str(ROOT))

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()


def temporary_workdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@dataclass
class Servers:
    """A run's whole stack and the two servers under it that a drill may stop or restart."""

    stack: Stack
    postgres: PostgresServer
    redis: RedisServer


@contextmanager
def throwaway_stack(name: str, *, settings: dict[str, str] | None = None, keep: bool = False) -> Iterator[Servers]:
    """A PostgreSQL cluster, a Redis server, the SMTP sink and the fake Twilio for one run, all stopped afterwards.

    The work directory (process logs, the cluster) is deleted unless ``keep``. Raises StackError
    when a part cannot start.
    """
    workdir = temporary_workdir(f"radgestmat-{name}-")
    postgres = redis_server = stack = None
    try:
        postgres = PostgresServer(workdir).init()
        redis_server = RedisServer(workdir).start()
        stack = Stack(
            workdir,
            postgres.url,
            redis_server.url,
            SmtpSink(check_addresses=True).up(),
            FakeTwilio().up(),
            dict(settings or {}),
        )
        yield Servers(stack, postgres, redis_server)
    finally:
        if stack is not None:
            stack.stop_all()
            stack.smtp.down()
            stack.twilio.down()
        if redis_server is not None:
            redis_server.destroy()
        if postgres is not None:
            postgres.destroy()
        if keep:
            print(f"process logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --- The ledger -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What became of a known set of notifications (a notification and its fallbacks count as one)."""

    notifications: int = 0
    sent_once: int = 0
    sent_twice: int = 0
    # Sent once, then again with the same Message-ID (a worker died between the server's
    # acceptance and the database write): one message for mail systems that deduplicate.
    resent_same_message_id: int = 0
    lost: int = 0
    failed: int = 0
    failed_reasons: Counter = field(default_factory=Counter)
    failed_causes: Counter = field(default_factory=Counter)  # by erreur_code
    lost_ids: list[int] = field(default_factory=list)
    twice_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "notifications": self.notifications,
            "sent_once": self.sent_once,
            "sent_twice": self.sent_twice,
            "resent_same_message_id": self.resent_same_message_id,
            "lost": self.lost,
            "failed": self.failed,
            "failed_reasons": dict(self.failed_reasons.most_common(5)),
            "failed_causes": dict(self.failed_causes),
            "lost_ids": self.lost_ids[:20],
            "twice_ids": self.twice_ids[:20],
        }


def unsettled(root_ids) -> int:
    """How many of these notifications (or their fallbacks) are still waiting, sending or due a retry."""
    from django.db.models import Q

    from notifications.models import FINAL_STATUTS, NotificationLog

    return (
        NotificationLog.objects.filter(Q(pk__in=root_ids) | Q(fallback_of__in=root_ids))
        .exclude(statut__in=FINAL_STATUTS)
        .count()
    )


def wait_settled(root_ids, *, timeout: float, interval: float = 0.5) -> float:
    """Seconds until every notification is in a final state; StackError when that takes longer than ``timeout``."""
    started = time.monotonic()
    wait_until(
        lambda: unsettled(root_ids) == 0,
        what="every notification to reach a final state",
        timeout=timeout,
        interval=interval,
    )
    return time.monotonic() - started


def tally(root_ids, stack: Stack) -> Tally:
    """Compare the database with what the SMTP sink and the fake Twilio received.

    A message is matched to its row by the email's X-RadGestMat-Notification header, and
    by the borrower's phone for WhatsApp/SMS (each drill borrower has a phone of their own).
    Sent once: exactly one message reached a server across the notification and its
    fallbacks. Sent twice: more than one distinct message. An email received twice with the
    same Message-ID is counted apart (``resent_same_message_id``): SMTP cannot tell a sender
    whose process died after the server's "250" that the message went through. Failed: none, and the row says why
    (ECHEC_PERMANENT or ANNULEE with a reason). Lost: none, and no reason — including a
    row marked sent that no server received.
    """
    from django.db.models import F

    from notifications.models import Canal, NotificationLog, Statut

    emails = stack.smtp.snapshot()
    with stack.smtp.lock:
        message_ids = {log_id: set(ids) for log_id, ids in stack.smtp.message_ids.items()}
    texts = stack.twilio.snapshot()
    rows = list(
        NotificationLog.objects.filter(pk__in=root_ids).values(
            "id",
            "canal",
            "statut",
            "erreur_code",
            "erreur_message",
            "reason_code",
            phone=F("attribution__client__phone"),
        )
    )
    fallbacks = list(
        NotificationLog.objects.filter(fallback_of__in=root_ids).values(
            "id", "fallback_of", "canal", phone=F("attribution__client__phone")
        )
    )
    chain: dict[int, list[dict]] = {row["id"]: [row] for row in rows}
    for row in fallbacks:
        chain[row["fallback_of"]].append(row)

    def deliveries(row: dict) -> int:
        if row["canal"] == Canal.EMAIL:
            return emails[row["id"]]
        prefix = "whatsapp:" if row["canal"] == Canal.WHATSAPP else ""
        return texts[prefix + str(row["phone"])]

    def distinct(row: dict) -> int:
        if row["canal"] == Canal.EMAIL:
            return len(message_ids.get(row["id"], ()))
        return deliveries(row)

    result = Tally(notifications=len(rows))
    for row in rows:
        count = sum(deliveries(member) for member in chain[row["id"]])
        if count == 1:
            result.sent_once += 1
        elif count > 1 and sum(distinct(member) for member in chain[row["id"]]) == 1:
            result.sent_once += 1
            result.resent_same_message_id += 1
        elif count > 1:
            result.sent_twice += 1
            result.twice_ids.append(row["id"])
        elif row["statut"] in (Statut.ECHEC_PERMANENT, Statut.ANNULEE) and (
            row["erreur_message"] or row["reason_code"]
        ):
            result.failed += 1
            result.failed_reasons[(row["erreur_message"] or row["reason_code"])[:90]] += 1
            result.failed_causes[row["erreur_code"] or "(none)"] += 1
        else:
            result.lost += 1
            result.lost_ids.append(row["id"])
    return result
