"""Drills on the providers: the SMTP server down or refusing, Twilio rate-limiting or failing, bad data in bulk.

Each drill returns the ledger (`Lab.settle`) plus "notes" (what the fault did) and
"problems": what the drill expected of the product and did not see (run.py fails on them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.faults.lab import Lab, drill
from bench.stack import wait_until

PRODUCTION_RETRY = {"NOTIFICATION_RETRY_BASE_DELAY": "60", "NOTIFICATION_RETRY_MAX_DELAY": "900"}
SMTP_OUTAGE_SECONDS = 60.0


def rows_of(root_ids: list[int]) -> list[dict]:
    from notifications.models import NotificationLog

    return list(
        NotificationLog.objects.filter(pk__in=root_ids)
        .order_by("pk")
        .values("id", "canal", "statut", "nb_tentatives", "erreur_message", "attribution__client_id")
    )


def worker_trouble(lab: Lab) -> list[str]:
    """A dead worker, or a traceback in a worker's log (an error the product did not classify)."""
    trouble = []
    for proc in lab.stack.processes:
        if not proc.alive():
            trouble.append(f"{proc.name} exited (status {proc.popen.returncode})")
        if "Traceback" in proc.output():
            trouble.append(f"a traceback in {proc.name}'s log {proc.log}")
    return trouble


def retry_schedule(settings: dict) -> str:
    base, cap = int(settings["NOTIFICATION_RETRY_BASE_DELAY"]), int(settings["NOTIFICATION_RETRY_MAX_DELAY"])
    second, third = min(base * 1.5, cap), min(base * 3, cap)
    return (
        f"retries after {base}-{second:g} s then {min(base * 2, cap)}-{third:g} s "
        f"(base {base} s x 2^(n-1), +<=50 % jitter, cap {cap} s)"
    )


@drill("smtp-down-then-back", "The SMTP server down for a minute, then back: retried, then sent once", quick=False)
def smtp_down_then_back(lab: Lab) -> dict:
    stack = lab.stack
    stack.settings.update(PRODUCTION_RETRY)  # the drills' 2 s retries would use up three attempts within the outage
    stack.beat()
    stack.worker("worker", concurrency=2)
    stack.smtp.down()
    started = time.monotonic()
    root_ids = lab.lend(100, with_phone=0)
    wait_until(
        lambda: all(row["nb_tentatives"] >= 1 for row in rows_of(root_ids)),
        what="a first attempt at every email",
        timeout=SMTP_OUTAGE_SECONDS - 5,
    )
    time.sleep(max(0.0, started + SMTP_OUTAGE_SECONDS - time.monotonic()))
    stack.smtp.up()
    outage = time.monotonic() - started
    back_at = time.time()
    result = lab.settle(root_ids, started)

    rows = rows_of(root_ids)
    attempts = Counter(row["nb_tentatives"] for row in rows)
    early = [log_id for log_id, at in stack.smtp.accepted_at.items() if at < back_at]
    problems = worker_trouble(lab)
    if result["sent_once"] != len(root_ids):
        problems.append(f"{len(root_ids) - result['sent_once']} of {len(root_ids)} emails not sent exactly once")
    if early:
        problems.append(f"{len(early)} emails accepted while the server was down (rows {early[:10]})")
    if attempts.get(1):
        problems.append(f"{attempts[1]} emails sent at the first attempt: the outage did not reach them")
    last = max(stack.smtp.accepted_at.values(), default=back_at)
    result["notes"] = (
        f"SMTP down {outage:.0f} s; {retry_schedule(stack.settings)}; attempts {dict(sorted(attempts.items()))}; "
        f"all sent within {last - back_at:.0f} s of the server's return"
    )
    result["problems"] = problems
    return result


@drill("smtp-stays-down", "The SMTP server stays down: ECHEC_PERMANENT after exactly three attempts", quick=True)
def smtp_stays_down(lab: Lab) -> dict:
    stack = lab.stack
    stack.smtp.down()
    stack.beat()
    stack.worker("worker", concurrency=2)
    started = time.monotonic()
    root_ids = lab.lend(100, with_phone=0)
    result = lab.settle(root_ids, started)

    rows = rows_of(root_ids)
    attempts = Counter(row["nb_tentatives"] for row in rows)
    unclear = [
        row["id"]
        for row in rows
        if row["statut"] != "ECHEC_PERMANENT"
        or not row["erreur_message"].startswith("Mail server")  # "gave up after 3" is in reason_params
    ]
    problems = worker_trouble(lab)
    if set(attempts) != {3}:
        problems.append(f"attempts per email {dict(attempts)}, expected exactly 3 each")
    if unclear:
        problems.append(f"{len(unclear)} emails not ECHEC_PERMANENT with the reason (rows {unclear[:10]})")
    reason = rows[0]["erreur_message"] if rows else ""
    result["notes"] = (
        f"{retry_schedule(stack.settings)}; nb_tentatives {dict(attempts)}; erreur_message e.g. “{reason[:110]}”"
    )
    result["problems"] = problems
    return result


# The Twilio drill retries after 5-7.5 s then 10-15 s, so a row rate-limited at any moment of the
# 8 s window has its last attempt after the window: 429 bursts are meant to be ridden out.
TWILIO_RETRY = {"NOTIFICATION_RETRY_BASE_DELAY": "5", "NOTIFICATION_RETRY_MAX_DELAY": "20"}
RATE_LIMITED_SECONDS = 8.0
SERVER_ERROR_SECONDS = 6.0


@drill("twilio-429-500", "The fake Twilio answering 429 (rate limit), then 500, for a while", quick=True)
def twilio_429_500(lab: Lab) -> dict:
    stack = lab.stack
    twilio = stack.twilio
    stack.settings.update(TWILIO_RETRY)
    stack.beat()
    worker = stack.worker("worker", concurrency=2)
    wait_until(lambda: " ready." in worker.output(), what="the worker to be ready", timeout=60)
    started = time.monotonic()

    twilio.fail_for(RATE_LIMITED_SECONDS, 429, 20429, "Too Many Requests")
    rate_limited_ids = lab.lend(60, with_phone=1.0)
    lend_seconds = time.monotonic() - started
    lab.settle(rate_limited_ids, started)  # a retry must not meet the 500s below
    rate_limited_answers = twilio.refused_by_code[20429]

    # Every third 500 comes after Twilio created the message: the ambiguity the product must not resend into.
    twilio.fail_for(SERVER_ERROR_SECONDS, 500, 20500, "Internal Server Error", creates_every=3)
    server_error_ids = lab.lend(40, with_phone=1.0)
    root_ids = rate_limited_ids + server_error_ids
    result = lab.settle(root_ids, started)
    server_error_answers = twilio.refused_by_code[20500]

    from assets.models import Client

    first, second = rows_of(rate_limited_ids), rows_of(server_error_ids)
    texts = twilio.snapshot()
    phones = dict(
        Client.objects.filter(pk__in={row["attribution__client_id"] for row in first + second}).values_list(
            "pk", "phone"
        )
    )

    def delivered(row: dict) -> int:
        return texts["whatsapp:" + phones[row["attribution__client_id"]]]

    rode_out = [row for row in first if row["canal"] == "WHATSAPP" and row["nb_tentatives"] > 1]
    ambiguous = [row for row in second if row["canal"] == "WHATSAPP" and row["statut"] == "ECHEC_PERMANENT"]
    created_anyway = sum(1 for row in ambiguous if delivered(row))
    problems = worker_trouble(lab)
    if not rode_out:
        problems.append("no WhatsApp message met the 429s: the drill tested nothing")
    not_sent = [
        row["id"] for row in first if row["statut"] != "ENVOYEE" or (row["canal"] == "WHATSAPP" and delivered(row) != 1)
    ]
    if not_sent:
        problems.append(f"{len(not_sent)} rate-limited notifications not sent exactly once (rows {not_sent[:10]})")
    if not ambiguous:
        problems.append("no WhatsApp message met the 500s: the drill tested nothing")
    unclear = [
        row["id"]
        for row in ambiguous
        if row["nb_tentatives"] != 1 or "check the Twilio message logs" not in row["erreur_message"]
    ]
    if unclear:
        problems.append(
            f"{len(unclear)} rows failed on a 500 were resent or have no clear reason (rows {unclear[:10]})"
        )
    if len(ambiguous) != server_error_answers:
        problems.append(f"{server_error_answers} 500 answers for {len(ambiguous)} ambiguous rows: a 500 was retried")
    other = [row["id"] for row in second if row not in ambiguous and row["statut"] != "ENVOYEE"]
    if other:
        problems.append(f"{len(other)} notifications of the 500 phase neither sent nor ambiguous (rows {other[:10]})")
    result["notes"] = (
        f"429 for {RATE_LIMITED_SECONDS:.0f} s ({rate_limited_answers} answers, lending took {lend_seconds:.0f} s): "
        f"{len(rode_out)} WhatsApp rode it out (attempts {dict(Counter(r['nb_tentatives'] for r in rode_out))}), "
        f"all sent once; 500 for {SERVER_ERROR_SECONDS:.0f} s: {len(ambiguous)} failed “ambiguous, check Twilio's logs”, "
        f"never resent, {created_anyway} of them created by Twilio anyway (counted sent once); "
        f"{retry_schedule(stack.settings)}"
    )
    result["problems"] = problems
    return result


# A tenth of the borrowers come from a legacy import that bypassed the forms. Half of those have an
# address no provider accepts (their rows must fail at once, saying why); the other half have
# hostile names, which are good data: delivered like any other, with nothing injected.
BAD_ADDRESSES = {
    "phone-too-short": lambda n: {"phone": f"+33 6 12 {n % 100:02d}"},
    "phone-not-a-number": lambda n: {"phone": f"voir accueil {n % 1000}"},
    "email-broken": lambda n: {
        "email": [f"jean.dupont{n}@@example.org", f"marie.curie{n}", f"eve{n}@example.org\r\nBcc: victim@evil.example"][
            n % 3
        ]
    },
    "email-undeliverable": lambda n: {"email": f"borrower{n}@invalid.example", "phone": ""},
    "both-bad": lambda n: {"email": f"accueil{n}@localhost", "phone": f"12{n % 100}"},
}
HOSTILE_NAMES = {
    "name-crlf-headers": "Eve\r\nBcc: victim@evil.example\r\nX-Injected: yes",
    "name-quoted-address": 'Mallory" <mallory@evil.example>, "Bob',
    "name-html-script": "<script>alert('x')</script><b>Bob</b> &amp; co",
    "name-long-rtl-emoji": ("\u202e محمد 👩\u200d🔬 Ünïcødé " * 20)[:200],  # the column holds 200 characters
    "name-sql": "Robert'); DROP TABLE assets_client;--",
}
KINDS = [*BAD_ADDRESSES, *HOSTILE_NAMES]
BAD_EMAIL = {"email-broken", "email-undeliverable", "both-bad"}
BAD_PHONE = {"phone-too-short", "phone-not-a-number", "both-bad"}
EMAIL_REASONS = {  # what erreur_message must say for each kind of bad email address
    "email-broken": "Invalid email address",
    "email-undeliverable": "Recipient refused by the mail server: 550",
    "both-bad": "Recipient refused by the mail server: 550",
}


def legacy_import(lab: Lab, count: int) -> dict[int, str]:
    """Create ``count`` clients with the ORM, unvalidated, as an old import would; return {client id: kind}.

    The ORM refuses an invalid phone even so (PhoneNumberField normalises on save), so those
    are written with SQL, like rows from before that field or a database-level import.
    """
    from django.db import connection

    from assets.models import Client
    from notifications.models import NotificationPreferences

    clients, kinds, raw_phones = [], [], []
    for index in range(count):
        lab.serial += 1
        n = lab.serial
        fields = {
            "name": f"Emprunteur {n}",
            "email": f"borrower{n}@example.org",
            "phone": f"+336{n:08d}" if n % 2 else "",
        }
        kind = KINDS[(index // 10) % len(KINDS)] if index % 10 == 0 else "good"
        if kind in BAD_ADDRESSES:
            fields.update(BAD_ADDRESSES[kind](n))
        elif kind in HOSTILE_NAMES:
            fields.update(name=HOSTILE_NAMES[kind], phone=f"+336{n:08d}")
        raw_phones.append(fields.pop("phone") if kind in BAD_PHONE else None)
        clients.append(Client(**fields))
        kinds.append(kind)
    created = Client.objects.bulk_create(clients)
    # WhatsApp is opt-in: every borrower of the drill agreed to it (bad numbers included).
    NotificationPreferences.objects.bulk_create(
        NotificationPreferences(client=client, notifications_whatsapp=True) for client in created
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE assets_client SET phone = %s WHERE id = %s",
            [(phone, client.pk) for client, phone in zip(created, raw_phones, strict=False) if phone is not None],
        )
    return {client.pk: kind for client, kind in zip(created, kinds, strict=False)}


def header_problems(
    lab: Lab, rows: list[dict], clients: Mapping[int, Mapping[str, Any]], kinds: dict[int, str]
) -> tuple[list[str], int]:
    """Check every received email: one envelope recipient, the borrower's; the usual headers and no other;
    the name only as the To header's display name; no raw HTML from a name. Returns (problems, hostile checked)."""
    client_of = {row["id"]: row["attribution__client_id"] for row in rows}
    with lab.stack.smtp.lock:
        received = [
            (list(envelope.rcpt_tos), message)
            for envelope, message in zip(lab.stack.smtp.envelopes, lab.stack.smtp.messages, strict=True)
        ]
    usual = Counter(frozenset(k.lower() for k in message) for _rcpt, message in received)
    expected_headers = usual.most_common(1)[0][0] if usual else frozenset()
    problems: list[str] = []
    hostile = 0
    for rcpt, message in received:
        log_id = int(message["X-RadGestMat-Notification"])
        client = clients[client_of[log_id]]
        kind = kinds[client_of[log_id]]
        hostile += kind in HOSTILE_NAMES
        headers = frozenset(k.lower() for k in message)
        to = message["To"].addresses
        if rcpt != [client["email"]]:
            problems.append(f"row {log_id} ({kind}): envelope recipients {rcpt}")
        if headers != expected_headers:
            problems.append(f"row {log_id} ({kind}): headers {sorted(headers ^ expected_headers)} added or missing")
        if len(to) != 1 or to[0].addr_spec != client["email"] or to[0].display_name != " ".join(client["name"].split()):
            problems.append(f"row {log_id} ({kind}): To header {message['To']!r}")
        html = message.get_body(preferencelist=("html",))
        assert html is not None, f"row {log_id}: no HTML part"  # every notification email has one
        if "<script>" in html.get_content():
            problems.append(f"row {log_id} ({kind}): a raw <script> in the HTML part")
    return problems, hostile


@drill(
    "bad-input-bulk", "1,000 loans, a tenth with invalid phones/emails or hostile names (a legacy import)", quick=True
)
def bad_input_bulk(lab: Lab) -> dict:
    from assets.models import Client

    stack = lab.stack
    stack.smtp.reject_domains = {"invalid.example"}
    stack.smtp.keep_messages = True
    stack.beat()
    worker = stack.worker("worker", concurrency=2)
    kinds = legacy_import(lab, 1000)
    clients = {c["id"]: c for c in Client.objects.filter(pk__in=kinds).values("id", "name", "email", "phone")}
    wait_until(lambda: " ready." in worker.output(), what="the worker to be ready", timeout=60)
    started = time.monotonic()
    root_ids = lab.lend_to(Client.objects.filter(pk__in=kinds).order_by("pk"))
    lend_seconds = time.monotonic() - started
    result = lab.settle(root_ids, started)

    rows = rows_of(root_ids)
    emails, texts = stack.smtp.snapshot(), stack.twilio.snapshot()
    problems = worker_trouble(lab)
    tally: Counter[str] = Counter()
    for row in rows:
        client = clients[row["attribution__client_id"]]
        kind = kinds[client["id"]]
        bad = kind in (BAD_EMAIL if row["canal"] == "EMAIL" else BAD_PHONE)
        got = emails[row["id"]] if row["canal"] == "EMAIL" else texts["whatsapp:" + client["phone"]]
        if bad:
            # A bad phone's reason is the model's validation message (in LANGUAGE_CODE); it quotes the number.
            reason = EMAIL_REASONS[kind] if row["canal"] == "EMAIL" else client["phone"]
            ok = (
                row["statut"] == "ECHEC_PERMANENT"
                and reason in row["erreur_message"]
                and row["nb_tentatives"] == 1
                and not got
            )
            tally["bad failed at once" if ok else "bad NOT failed as expected"] += 1
            if not ok:
                problems.append(
                    f"row {row['id']} {row['canal']} ({kind}): {row['statut']} after {row['nb_tentatives']} "
                    f"attempts, {got} delivered, reason “{row['erreur_message'][:100]}”"
                )
        else:
            ok = row["statut"] == "ENVOYEE" and got == 1
            tally[
                ("hostile name" if kind in HOSTILE_NAMES else "good") + (" sent once" if ok else " NOT sent once")
            ] += 1
            if not ok:
                problems.append(
                    f"row {row['id']} {row['canal']} ({kind}): {row['statut']}, {got} delivered, "
                    f"reason “{row['erreur_message'][:100]}”"
                )
    injected, hostile_checked = header_problems(lab, rows, clients, kinds)
    problems.extend(injected)
    if hostile_checked < 5:
        problems.append(f"only {hostile_checked} emails to hostile names reached the sink: the drill tested nothing")
    result["notes"] = (
        f"lent 1,000 in {lend_seconds:.0f} s; {dict(sorted(tally.items()))}; "
        f"{sum(k in BAD_ADDRESSES for k in kinds.values())} bad-address and {sum(k in HOSTILE_NAMES for k in kinds.values())} "
        f"hostile-name borrowers; SMTP 550 refusals {sum(stack.smtp.refused.values())}, Twilio 21211 refusals "
        f"{stack.twilio.refused_by_code[21211]}; headers checked on {len(stack.smtp.messages)} emails "
        f"({hostile_checked} to hostile names): {len(injected)} problems"
    )
    result["problems"] = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
    return result
