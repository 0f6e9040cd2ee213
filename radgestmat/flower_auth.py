"""When Flower may start, and with which credentials: one rule for deploy/flower.py and `check --deploy`.

Flower shows every worker, queue and task, and can revoke tasks and shut workers down.
The shipped nginx site proxies ``/flower/`` to 127.0.0.1:5555, so a Flower bound to the
loopback interface is still open to the whole Internet: binding is no protection.
Flower therefore needs strong basic-auth credentials, except when the operator says in
so many words that it is local only (``FLOWER_LOCAL_ONLY=1``: bound to the loopback
interface and no proxy forwards to it, as under ``make run``).

Plain Python, no Django settings: the launcher runs before Django is set up.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_PASSWORD_LENGTH = 12
TRUE = frozenset({"1", "true", "yes", "on"})


def local_only(environ: Mapping[str, str]) -> bool:
    return environ.get("FLOWER_LOCAL_ONLY", "").strip().lower() in TRUE


def credential_problems(basic_auth: str) -> list[str]:
    """What is wrong with a FLOWER_BASIC_AUTH value (``user:password[,user2:password2]``); never quotes a password."""
    if not basic_auth.strip():
        return ["FLOWER_BASIC_AUTH is empty"]
    problems = []
    for number, pair in enumerate(basic_auth.split(","), start=1):
        user, colon, password = pair.strip().partition(":")
        who = f"user {user!r}" if user else f"entry {number}"
        if not colon or not user or not password:
            problems.append(f"FLOWER_BASIC_AUTH entry {number} is not user:password")
        elif len(password) < MIN_PASSWORD_LENGTH:
            problems.append(f"the password of {who} is shorter than {MIN_PASSWORD_LENGTH} characters")
        elif password.lower() in common_passwords() or user.lower() in password.lower() or len(set(password)) < 5:
            problems.append(f"the password of {who} is too easy to guess")
    return problems


def refusal(environ: Mapping[str, str]) -> str | None:
    """Why Flower must not start with this environment, in one line; None when it may."""
    address = environ.get("FLOWER_ADDRESS", "127.0.0.1")
    basic_auth = environ.get("FLOWER_BASIC_AUTH", "").strip()
    if basic_auth:
        problems = credential_problems(basic_auth)
        if problems:
            return f"flower: weak FLOWER_BASIC_AUTH (user:password): {'; '.join(problems)}."
        return None
    if local_only(environ):
        if address not in LOOPBACK:
            return (
                f"flower: FLOWER_LOCAL_ONLY=1 but FLOWER_ADDRESS is {address}; bind 127.0.0.1 or set FLOWER_BASIC_AUTH."
            )
        return None
    return (
        "flower: refusing to start without FLOWER_BASIC_AUTH (user:password): behind the nginx site (/flower/) "
        "it would be open to anyone; set it, or FLOWER_LOCAL_ONLY=1 for a Flower on 127.0.0.1 that no proxy forwards to."
    )


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Django's list of 20,000 common passwords (read directly: no settings needed)."""
    import django.contrib.auth

    path = Path(django.contrib.auth.__file__).parent / "common-passwords.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines)
