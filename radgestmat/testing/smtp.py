"""The SMTP sink: an in-process SMTP server (aiosmtpd) on a free port of 127.0.0.1 that records what it accepts.

One class for the tests and the drills. The tests steer its next answers (``rcpt_reply``,
``data_reply``, ``release``, ``accept_login``) and read the parsed ``messages``; the drills
count messages by NotificationLog id (``by_log``, ``snapshot()``), refuse some recipients
(``check_addresses``, ``reject_domains``), slow it down (``delay``) and take it down and up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

import asyncio
import email
import email.message
import email.parser
import email.policy
import threading
import time
from collections import Counter

from radgestmat.testing.net import free_port


class SmtpSink:
    """What the SMTP server received, and how it should answer next.

    With ``keep_messages`` (the tests' fixture), every message whose DATA arrived is kept whole and
    parsed in ``messages``, its envelope in ``envelopes``; without it only headers are read, with
    the cheap compat32 policy, because the drills' sink shares the machine's cores with the workers.
    With ``check_addresses``, like a real server it refuses at RCPT, with 550, a recipient it cannot
    deliver to: a syntactically broken address, or one in ``reject_domains``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_messages: bool = False,
        check_addresses: bool = False,
        reject_domains: tuple[str, ...] = (),
        accept_login: bool | None = None,
    ):
        self.host = host
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.controller: Controller | None = None
        # How it answers.
        self.rcpt_reply: str | None = None  # e.g. "451 4.3.0 Try again later" or "550 5.1.1 No such user"
        self.data_reply: str | None = None
        self.release: threading.Event | None = None  # when set, DATA waits for it before answering
        self.accept_login = accept_login  # None: no AUTH offered; False: every login gets 535 (then `restart()`)
        self.delay = 0.0  # seconds each message waits before "250 accepted": a slow server, senders caught mid-send
        self.check_addresses = check_addresses
        self.reject_domains = {domain.lower() for domain in reject_domains}
        self.keep_messages = keep_messages
        # What it received.
        self.received = threading.Event()  # set at the first DATA
        self.sessions = 0  # EHLO greetings: one per SMTP connection a client opened
        self.count = 0
        self.by_log: Counter[int] = Counter()
        self.accepted_at: dict[int, float] = {}  # log id -> time.time() of its first acceptance
        self.message_ids: dict[int, set[str]] = {}  # log id -> the Message-IDs received for it
        self.by_message_id: Counter[str] = Counter()  # Message-ID -> times received
        self.refused: Counter[str] = Counter()  # recipient address -> RCPT refusals
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []

    # --- Starting and stopping ---------------------------------------------------------------------

    def up(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        if self.accept_login is None:
            self.controller = Controller(self, hostname=self.host, port=self.port)
        else:
            self.controller = Controller(
                self, hostname=self.host, port=self.port, authenticator=self.authenticate, auth_require_tls=False
            )
        self.controller.start()
        return self

    def down(self) -> None:
        """Close the port: clients get "connection refused" until `up()`."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def restart(self) -> None:
        """Stop and start again on the same port: open client connections are cut."""
        self.down()
        self.up()

    # --- The SMTP conversation ---------------------------------------------------------------------

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=bool(self.accept_login), handled=False)

    def refusal(self, address: str) -> str:
        """The 550 answer for a recipient this server cannot deliver to, or "" to accept it."""
        if not self.check_addresses:
            return ""
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or "." not in domain or any(c.isspace() for c in domain):
            return f"550 5.1.3 <{address}>: Bad recipient address syntax"
        if domain.lower() in self.reject_domains:
            return f"550 5.1.2 <{address}>: Recipient address rejected: Domain not found"
        return ""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        refusal = self.refusal(address)
        if refusal:
            with self.lock:
                self.refused[address] += 1
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(envelope.content)
        # One message for several rows (a group) names them all; else the one row it is for.
        listed = headers.get("X-RadGestMat-Notifications") or headers.get("X-RadGestMat-Notification") or "0"
        try:
            log_ids = [int(part) for part in listed.split(",")]
        except ValueError:  # not a NotificationLog's message (a test's own)
            log_ids = [0]
        with self.lock:
            self.count += 1
            self.by_message_id[headers.get("Message-ID", "")] += 1
            for log_id in log_ids:
                self.by_log[log_id] += 1
                self.accepted_at.setdefault(log_id, time.time())
                self.message_ids.setdefault(log_id, set()).add(headers.get("Message-ID", ""))
            if self.keep_messages:
                self.envelopes.append(envelope)
                self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.received.set()
        if self.release is not None:
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return self.data_reply or "250 Message accepted"

    # --- Reading what it received ------------------------------------------------------------------

    def snapshot(self) -> Counter[int]:
        with self.lock:
            return Counter(self.by_log)

    def clear(self) -> None:
        """Forget what was received and refused, and the options (log ids start again after a drill's reset)."""
        with self.lock:
            self.by_log.clear()
            self.accepted_at.clear()
            self.message_ids.clear()
            self.by_message_id.clear()
            self.count = 0
            self.refused.clear()
            self.messages.clear()
            self.envelopes.clear()
            self.received.clear()
            self.reject_domains = set()
            self.keep_messages = False
            self.delay = 0.0
            self.rcpt_reply = self.data_reply = self.release = None
