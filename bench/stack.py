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

import asyncio
import email
import email.parser
import email.policy
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "bench-auth-token"
MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


class StackError(RuntimeError):
    """A part of the stack could not start: the message says which and what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, what: str, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy without raising; raise StackError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001  not there yet
            last_error = exc
        time.sleep(interval)
    raise StackError(f"{what} did not happen within {timeout:.0f} s (last error: {last_error!r})")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- Servers --------------------------------------------------------------------------------------


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` account when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb) on a free port of 127.0.0.1; stop/start/restart keep its data."""

    def __init__(self, workdir: Path):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise StackError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.bindir = Path(found[-1]).parent
        self.datadir = Path(workdir) / "pgdata"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/radgestmat"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres_user([str(self.bindir / args[0]), *args[1:]]), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL {args[0]} failed: {(result.stderr or result.stdout).strip()[-300:]}")

    def init(self) -> PostgresServer:
        self.datadir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
            os.chmod(self.datadir.parent, 0o755)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE radgestmat")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.datadir / "server.log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects clients cleanly; ``immediate`` is a crash (recovery on the next start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            with suppress(StackError):
                self.stop("immediate")


class RedisServer:
    """A throwaway redis-server on a free port of 127.0.0.1; a restart comes back on the same port, empty."""

    def __init__(self, workdir: Path):
        binary = shutil.which("redis-server")
        if not binary:
            raise StackError("redis-server not found: apt-get install redis-server")
        self.binary = binary
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), what=f"redis-server on port {self.port} to listen")
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        wait_until(lambda: not port_open(self.port), what=f"redis-server on port {self.port} to stop")

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SmtpSink:
    """An SMTP server (aiosmtpd) that accepts everything and records each message's NotificationLog id.

    `down()` closes the port (clients get "connection refused"); `up()` opens it again.
    Like a real server it refuses at RCPT, with 550, a recipient it cannot deliver to: a
    syntactically broken address, or one in ``reject_domains`` (none by default).
    With ``keep_messages``, it keeps each accepted message (envelope recipients, parsed
    message) in ``messages`` so a drill can inspect the headers it received.
    """

    def __init__(self, *, reject_domains: tuple[str, ...] = (), keep_messages: bool = False):
        self.port = free_port()
        self.lock = threading.Lock()
        self.by_log: Counter[int] = Counter()
        self.accepted_at: dict[int, float] = {}  # log id -> time.time() of its first acceptance
        self.message_ids: dict[int, set[str]] = {}  # log id -> the Message-IDs received for it
        self.count = 0
        self.sessions = 0  # EHLO greetings: one per SMTP connection a client opened
        self.controller: Controller | None = None
        self.reject_domains = {domain.lower() for domain in reject_domains}
        self.refused: Counter[str] = Counter()  # recipient address -> RCPT refusals
        self.keep_messages = keep_messages
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.delay = 0.0  # seconds each message waits before "250 accepted": a slow server, senders caught mid-send

    def refusal(self, address: str) -> str:
        """The 550 answer for a recipient this server cannot deliver to, or "" to accept it."""
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or "." not in domain or any(c.isspace() for c in domain):
            return f"550 5.1.3 <{address}>: Bad recipient address syntax"
        if domain.lower() in self.reject_domains:
            return f"550 5.1.2 <{address}>: Recipient address rejected: Domain not found"
        return ""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.refusal(address)
        if refusal:
            with self.lock:
                self.refused[address] += 1
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        # Headers only, with the cheap compat32 policy: the sink shares the machine's cores with the workers.
        message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(envelope.content)
        log_id = int(message.get("X-RadGestMat-Notification") or 0)
        with self.lock:
            self.count += 1
            self.by_log[log_id] += 1
            self.accepted_at.setdefault(log_id, time.time())
            self.message_ids.setdefault(log_id, set()).add(message.get("Message-ID", ""))
            if self.keep_messages:  # whole and decoded, for the drills that read headers and bodies
                whole = email.message_from_bytes(envelope.content, policy=email.policy.default)
                self.messages.append((list(envelope.rcpt_tos), whole))
        return "250 Message accepted"

    def up(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def snapshot(self) -> Counter[int]:
        with self.lock:
            return Counter(self.by_log)

    def clear(self) -> None:
        """Forget what was received and refused, and the options (log ids start again after a drill's reset)."""
        with self.lock:
            self.by_log.clear()
            self.accepted_at.clear()
            self.message_ids.clear()
            self.count = 0
            self.refused.clear()
            self.messages.clear()
            self.reject_domains = set()
            self.keep_messages = False
            self.delay = 0.0


def valid_number(number: str) -> bool:
    """Whether Twilio would take ``number`` as a "To" (E.164 and a real number plan)."""
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


@dataclass
class TwilioFault:
    status: int
    code: int
    message: str
    until: float  # time.monotonic()
    creates_every: int = 0  # every n-th faulty answer comes after the message was created (a 5xx's ambiguity)
    answered: int = 0


class FakeTwilio:
    """Twilio's Messages API as the `twilio` client sees it: basic auth, form-encoded POST, JSON answer.

    Records each accepted message by its "To" address; `fail_for()` makes it answer
    an error (429 rate limit, 500 server error) for a while, creating nothing (or, with
    ``creates_every=n``, creating every n-th message anyway, as a 5xx may). Like Twilio,
    it refuses a "To" that is not a valid phone number (HTTP 400, error 21211).
    """

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.by_to: Counter[str] = Counter()
        self.count = 0
        self.refused = 0
        self.refused_by_code: Counter[int] = Counter()
        self.connections = 0  # TCP connections the clients opened (HTTP keep-alive reuses them)
        self.fault: TwilioFault | None = None
        self.server: ThreadingHTTPServer | None = None

    def fail_for(self, seconds: float, status: int, code: int, message: str, *, creates_every: int = 0) -> None:
        self.fault = TwilioFault(status, code, message, time.monotonic() + seconds, creates_every)

    def up(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the
            # body until the client's delayed ACK (40 ms), which Twilio's real servers do not add.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with fake.lock:
                    fake.connections += 1

            def answer(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                if self.path.split("?")[0] != MESSAGES_PATH:
                    return self.answer(404, {"code": 20404, "message": "Not found", "status": 404})
                to = form.get("To", [""])[0]
                fault = fake.fault
                if fault is not None and time.monotonic() < fault.until:
                    with fake.lock:
                        fake.refused += 1
                        fake.refused_by_code[fault.code] += 1
                        fault.answered += 1
                        if fault.creates_every and fault.answered % fault.creates_every == 0:
                            fake.count += 1
                            fake.by_to[to] += 1
                    return self.answer(
                        fault.status, {"code": fault.code, "message": fault.message, "status": fault.status}
                    )
                if not valid_number(to.removeprefix("whatsapp:")):
                    with fake.lock:
                        fake.refused += 1
                        fake.refused_by_code[21211] += 1
                    return self.answer(
                        400,
                        {
                            "code": 21211,
                            "message": f"The 'To' number {to} is not a valid phone number.",
                            "more_info": "https://www.twilio.com/docs/errors/21211",
                            "status": 400,
                        },
                    )
                with fake.lock:
                    fake.count += 1
                    fake.by_to[to] += 1
                    sid = f"SM{fake.count:032d}"
                self.answer(201, {"sid": sid, "status": "queued", "to": to, "error_code": None, "error_message": None})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.by_to)

    def clear(self) -> None:
        """Forget what was received and refused, and any fault."""
        with self.lock:
            self.by_to.clear()
            self.count = 0
            self.refused = 0
            self.refused_by_code.clear()
            self.fault = None


# --- Processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""  # where a web process answers

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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
            EMAIL_HOST="127.0.0.1",
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

    def _spawn(self, name: str, command: list[str]) -> Proc:
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        with open(log, "w") as out:
            popen = subprocess.Popen(
                command, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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
        queues: str = "default,notifications",
        extra_args: tuple[str, ...] = (),
    ) -> Proc:
        return self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "radgestmat",
                "worker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "-l",
                "INFO",
                *extra_args,
            ],
        )

    def beat(self, name: str = "beat") -> Proc:
        return self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "radgestmat",
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                "radgestmat.beat_scheduler:DatabaseScheduler",
                "--pidfile",
                str(self.workdir / f"{name}-{len(self.processes)}.pid"),
            ],
        )

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
        stack = Stack(workdir, postgres.url, redis_server.url, SmtpSink().up(), FakeTwilio().up(), dict(settings or {}))
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
            "id", "canal", "statut", "erreur_code", "erreur_message", phone=F("attribution__client__phone")
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
        elif row["statut"] in (Statut.ECHEC_PERMANENT, Statut.ANNULEE) and row["erreur_message"]:
            result.failed += 1
            result.failed_reasons[row["erreur_message"][:90]] += 1
            result.failed_causes[row["erreur_code"] or "(none)"] += 1
        else:
            result.lost += 1
            result.lost_ids.append(row["id"])
    return result
