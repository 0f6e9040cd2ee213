"""Login throttling against password guessing, for the staff login and the admin login alike.

Failures are counted in the cache (Redis in production) per username+address and
per address. Past the limit, that pair (or that address) is locked out for
``LOGIN_LOCKOUT_MINUTES`` and the form says so, without checking the password at
all; a successful login clears the username+address counter. If the cache is
unreachable the throttle steps aside rather than locking every staff member out.
"""

from __future__ import annotations

import hashlib
import logging
import math

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import ngettext

logger = logging.getLogger("radgestmat.security")

# One address may try this many times more usernames than one username may be tried.
ADDRESS_FACTOR = 4


def client_ip(request: HttpRequest | None) -> str:
    if request is None:
        return "unknown"
    if settings.CLIENT_IP_HEADER:
        forwarded = request.META.get(settings.CLIENT_IP_HEADER, "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "unknown")


class LoginThrottle:
    """Failure counters for one login attempt: (username, address) and address alone."""

    def __init__(self, username: str, ip: str):
        digest = hashlib.sha256(f"{(username or '').strip().lower()}\0{ip}".encode()).hexdigest()[:32]
        self.pair_key = f"login-failures:pair:{digest}"
        self.ip_key = f"login-failures:ip:{ip}"
        self.window = settings.LOGIN_LOCKOUT_MINUTES * 60

    def is_locked(self) -> bool:
        try:
            counts = cache.get_many([self.pair_key, self.ip_key])
        except Exception:
            logger.warning("login throttle: cache unreachable, not throttling", exc_info=True)
            return False
        limit = settings.LOGIN_FAILURE_LIMIT
        return counts.get(self.pair_key, 0) >= limit or counts.get(self.ip_key, 0) >= limit * ADDRESS_FACTOR

    def record_failure(self) -> None:
        try:
            for key in (self.pair_key, self.ip_key):
                # add() starts the window at the first failure; incr() keeps its expiry.
                if not cache.add(key, 1, self.window):
                    cache.incr(key)
        except Exception:
            logger.warning("login throttle: cache unreachable, failure not counted", exc_info=True)

    def reset(self) -> None:
        try:
            cache.delete(self.pair_key)
        except Exception:
            logger.warning("login throttle: cache unreachable", exc_info=True)


class ThrottledLoginMixin:
    """For a Django authentication form: refuse while locked out, count failures, clear on success."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        throttle = LoginThrottle(username, client_ip(self.request))
        if throttle.is_locked():
            minutes = math.ceil(settings.LOGIN_LOCKOUT_MINUTES)
            logger.warning("login locked out after repeated failures", extra={"ip": client_ip(self.request)})
            raise ValidationError(
                ngettext(
                    "Too many failed login attempts. Try again in %(minutes)d minute.",
                    "Too many failed login attempts. Try again in %(minutes)d minutes.",
                    minutes,
                ),
                code="throttled",
                params={"minutes": minutes},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            throttle.record_failure()
            raise
        throttle.reset()
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
