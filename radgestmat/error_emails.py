"""Server-error emails to ADMINS: masked like every log line, without credentials, and rate-limited.

Django's `AdminEmailHandler` mails the whole traceback report: the request (query
string, headers) and the settings. Here every email address and phone number in it is
masked as on every other handler (`radgestmat.logging.mask_personal_data`), every setting
or request header whose name or value holds a credential is replaced by stars
(`SafeExceptionReporterFilter`, the project's `DEFAULT_EXCEPTION_REPORTER_FILTER`), and
one error (same exception type at the same line) is mailed at most once per
``ERROR_EMAIL_INTERVAL_MINUTES``, counted in the cache so that all web processes agree.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter as DjangoSafeExceptionReporterFilter

from radgestmat.logging import URL_CREDENTIALS_RE, mask_personal_data, mask_url_credentials

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger("radgestmat.security")


class SafeExceptionReporterFilter(DjangoSafeExceptionReporterFilter):
    """Django's filter, plus what holds credentials in this project: URLs (REDIS_URL, CELERY_BROKER_URL,
    CACHES' LOCATION, a sentinel list), the databases, and any value that is a URL with a password."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|DATABASE|REDIS|BROKER|SENTINEL|LOCATION|DSN",
        flags=re.I,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        if isinstance(value, str) and URL_CREDENTIALS_RE.search(value):
            return mask_url_credentials(value)
        return super().cleanse_setting(key, value)


class ThrottledAdminEmailHandler(AdminEmailHandler):
    """`AdminEmailHandler` that masks what it sends and mails one error at most once per interval."""

    _local_last_sent: dict[str, float] = {}
    _local_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if not settings.ADMINS or not self.first_in_interval(error_fingerprint(record)):
            return
        super().emit(record)

    def send_mail(self, subject: StrOrPromise, message: StrOrPromise, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("html_message"):
            kwargs["html_message"] = mask_personal_data(kwargs["html_message"])
        super().send_mail(mask_personal_data(str(subject)), mask_personal_data(str(message)), *args, **kwargs)

    def first_in_interval(self, fingerprint: str) -> bool:
        interval = settings.ERROR_EMAIL_INTERVAL_MINUTES * 60
        if interval <= 0:
            return True
        try:
            from django.core.cache import cache

            return cache.add(f"error-email:{fingerprint}", 1, interval)
        except Exception:  # noqa: BLE001
            # The cache (Redis) may be what is failing: then count in this process, never flood.
            with self._local_lock:
                now = time.monotonic()
                if now - self._local_last_sent.get(fingerprint, -interval) < interval:
                    return False
                self._local_last_sent[fingerprint] = now
                return True


def error_fingerprint(record: logging.LogRecord) -> str:
    """One error: the exception's type and the line it was raised at, else the message's template."""
    if record.exc_info and record.exc_info[0] is not None:
        exc_type, _, tb = record.exc_info
        frames = traceback.extract_tb(tb)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        what = f"{exc_type.__module__}.{exc_type.__qualname__}@{where}"
    else:
        what = f"{record.name}:{record.msg}"
    return hashlib.sha256(what.encode()).hexdigest()[:32]
