"""Twilio's Messages API on 127.0.0.1, for the real `twilio` client.

Two fakes with one URL layout: `FakeTwilio`, a server of its own that accepts every valid
number and can be told to fail for a while (the benches and drills, many workers at once);
and `TwilioScript`, ordered answers on a pytest-httpserver, for the tests that say exactly
what each request gets and check what was asked.

The other direction, Twilio calling us: `inbound_message` builds the form of an inbound
message webhook (text or a template's quick-reply button) and `twilio_signature` signs it
as Twilio does; `FakeTwilio.deliver_inbound` posts it over HTTP to a running server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from radgestmat.testing.net import free_port

TWILIO_SID = "AC" + "0" * 32
MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


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

    def __init__(self, *, host: str = "127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.lock = threading.Lock()
        self.by_to: Counter[str] = Counter()
        self.count = 0
        self.refused = 0
        self.refused_by_code: Counter[int] = Counter()
        self.sent: list[dict[str, str]] = []  # the form of each message created, in order
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
                    fake.sent.append({key: values[0] for key, values in form.items()})
                    sid = f"SM{fake.count:032d}"
                self.answer(201, {"sid": sid, "status": "queued", "to": to, "error_code": None, "error_message": None})

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
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
            self.sent.clear()
            self.fault = None

    def deliver_inbound(self, webhook_url: str, params: dict[str, str], *, token: str, public_url: str = ""):
        """POST an inbound message to ``webhook_url`` as Twilio does, signed for ``public_url`` (default: the same)."""
        import requests

        signature = twilio_signature(public_url or webhook_url, params, token)
        return requests.post(webhook_url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)


class TwilioScript:
    """Ordered answers of Twilio's Messages API on a pytest-httpserver: each request gets the next one."""

    def __init__(self, httpserver):
        self.server = httpserver
        self._count = 0

    def accept(self, times: int = 1) -> None:
        for _ in range(times):
            self._count += 1
            sid = f"SM{self._count:032d}"
            self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(
                {"sid": sid, "status": "queued", "error_code": None, "error_message": None}, status=201
            )

    def fail(self, status: int, code: int | None, message: str = "Error") -> None:
        body = {"status": status, "message": message, "more_info": "https://www.twilio.com/docs/errors"}
        if code is not None:
            body["code"] = code
        self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(body, status=status)

    @property
    def requests(self) -> list:
        return [request for request, _response in self.server.log]

    def forms(self) -> list[dict]:
        return [request.form.to_dict() for request in self.requests]


def twilio_signature(url: str, params: dict[str, str], token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends with a webhook to ``url`` (the public URL it called)."""
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, params)


def inbound_message(
    sender: str,
    body: str = "",
    *,
    sid: str = "",
    button: str = "",
    to: str = "",
    replied_to: str = "",
) -> dict[str, str]:
    """The form of Twilio's inbound message webhook: ``sender`` "whatsapp:+33…" (WhatsApp) or "+33…" (SMS).

    ``button`` is a quick-reply button's id (ButtonPayload; its title becomes Body and ButtonText,
    ``body`` then); ``replied_to`` the SID of our message the WhatsApp reply answers.
    """
    whatsapp = sender.startswith("whatsapp:")
    sid = sid or f"SM{uuid.uuid4().hex}"
    params = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": TWILIO_SID,
        "From": sender,
        "To": to or ("whatsapp:+14155238886" if whatsapp else "+15005550006"),
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        "SmsStatus": "received",
    }
    if whatsapp:
        params.update(ProfileName="Camille", WaId=sender.removeprefix("whatsapp:+"), MessageType="text")
    if button:
        params.update(ButtonPayload=button, ButtonText=body, MessageType="button")
    if replied_to:
        params.update(OriginalRepliedMessageSid=replied_to, OriginalRepliedMessageSender=params["To"])
    return params
