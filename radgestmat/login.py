"""Login throttling against password guessing, for the staff login and the admin login alike.

Attempts are counted in the cache (Redis in production) per username+address and
per address, before the password is checked. Past the limit, that pair (or that
address) is locked out for ``LOGIN_LOCKOUT_MINUTES`` and the form says so, without
checking the password at all; a successful login clears the username+address
counter. If the cache is unreachable the throttle steps aside rather than locking
every staff member out.
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

from radgestmat.ratelimit import hit

logger = logging.getLogger("radgestmat.security")

# One address may try this many times more usernames than one username may be tried.
ADDRESS_FACTOR = 4


def client_ip(request: HttpRequest | None) -> str:
    """The address login throttling counts: the one our own proxy saw, never one the client chose.

    ``CLIENT_IP_HEADER`` names the header the proxy sets (``HTTP_X_REAL_IP``, or
    ``HTTP_X_FORWARDED_FOR``). A client can send its own ``X-Forwarded-For`` and every proxy
    appends to it, so only the entries added by our ``CLIENT_IP_TRUSTED_PROXIES`` proxies are
    true: the one that many places from the right. A header with fewer entries than that did
    not come through all our proxies, and the direct peer (``REMOTE_ADDR``) is counted instead.
    """
    if request is None:
        return "unknown"
    if settings.CLIENT_IP_HEADER:
        entries = [entry.strip() for entry in request.META.get(settings.CLIENT_IP_HEADER, "").split(",")]
        entries = [entry for entry in entries if entry]
        trusted = max(1, settings.CLIENT_IP_TRUSTED_PROXIES)
        if len(entries) >= trusted:
            return entries[-trusted]
    return request.META.get("REMOTE_ADDR", "unknown")


class LoginThrottle:
    """Failure counters for one login attempt: (username, address) and address alone."""

    def __init__(self, username: str, ip: str):
        digest = hashlib.sha256(f"{(username or '').strip().lower()}\0{ip}".encode()).hexdigest()[:32]
        self.pair_key = f"login-failures:pair:{digest}"
        self.ip_key = f"login-failures:ip:{ip}"
        self.window = settings.LOGIN_LOCKOUT_MINUTES * 60

    def admit(self) -> bool:
        """Count this attempt before its password is checked; False when it is over the limit.

        Incrementing first and deciding on the count Redis returns is what keeps parallel
        attempts honest: if each read the count and then checked the password, all of them
        would read the same count and all would get a password check. An attempt the pair's
        limit refuses does not count against the address: it costs no password check, and
        counting it let a burst on one username push an admitted attempt over the address's limit.
        """
        limit = settings.LOGIN_FAILURE_LIMIT
        try:
            if self._increment(self.pair_key) > limit:
                return False
            address_attempts = self._increment(self.ip_key)
        except Exception:
            logger.warning("login throttle: cache unreachable, not throttling", exc_info=True)
            return True
        return address_attempts <= limit * ADDRESS_FACTOR

    def _increment(self, key: str) -> int:
        return hit(key, self.window)

    def forget_success(self) -> None:
        """A successful login clears the pair's count and takes itself back off the address's."""
        try:
            cache.delete(self.pair_key)
            cache.decr(self.ip_key)
        except ValueError:  # the address's window ran out meanwhile
            pass
        except Exception:
            logger.warning("login throttle: cache unreachable", exc_info=True)


class ThrottledLoginMixin:
    """For a Django authentication form: refuse while locked out, count failures, clear on success."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        throttle = LoginThrottle(username, client_ip(self.request))
        if not throttle.admit():
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
        cleaned = super().clean()  # a wrong password raises, and its attempt stays counted
        throttle.forget_success()
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
