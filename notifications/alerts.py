"""Failure alerts: email the site admins (ADMIN_EMAILS) once per incident, and once more when it is over.

Incidents, checked by `check_notification_alerts(now=...)`:

- ``failures``: more than ALERT_FAILURES_PER_HOUR notifications failed permanently in the last hour;
- ``credentials:<canal>``: the provider rejected our credentials (rows whose ``erreur_code`` is
  CREDENTIALS: SMTP 530/534/535, Twilio HTTP 401 / 20003, as the channels classify them)
  in the last CREDENTIALS_WINDOW — every message on that channel will fail until someone fixes them;
- ``beat``: beat has not started the relay for BEAT_STALE_AFTER_MINUTES. Beat starts this
  check too, so every worker also enqueues it now and then (`radgestmat.watchdog.AlertWatchdog`).

An open incident is a key in the cache (Redis), taken with an atomic ``add``: however
many workers run the check at once, one email goes out per incident. If sending the
email fails the key is released, so the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db.models import Count
from django.utils.timezone import localtime

from radgestmat.logging import mask_personal_data

from .models import Canal, CodeErreur, NotificationLog, Statut
from .scheduler_status import beat_last_tick, beat_stopped

logger = logging.getLogger("radgestmat.ops")

CREDENTIALS_WINDOW = timedelta(minutes=15)
INCIDENT_KEYS = ["failures", "beat", *(f"credentials:{canal}" for canal in Canal.values)]


@dataclass(frozen=True)
class Incident:
    key: str
    subject: str
    body: str


def incident_cache_key(key: str) -> str:
    return f"alert-incident:{key}"


def failure_incident(now: datetime) -> Incident | None:
    since = now - timedelta(hours=1)
    failed = NotificationLog.objects.filter(statut=Statut.ECHEC_PERMANENT, updated_at__gte=since)
    total = failed.count()
    if total <= settings.ALERT_FAILURES_PER_HOUR:
        return None
    reasons = failed.values("canal", "erreur_message").annotate(n=Count("id")).order_by("-n", "canal")[:10]
    lines = [f"{row['n']:>5}  {row['canal']:<8} {mask_personal_data(row['erreur_message'])[:200]}" for row in reasons]
    return Incident(
        "failures",
        f"{total} notifications failed in the last hour",
        f"{total} notifications failed permanently in the last hour "
        f"(alert threshold: {settings.ALERT_FAILURES_PER_HOUR}).\n\nMost frequent reasons:\n" + "\n".join(lines),
    )


def credential_incidents(now: datetime) -> list[Incident]:
    rejected = set(
        NotificationLog.objects.filter(
            erreur_code=CodeErreur.CREDENTIALS,
            statut__in=[Statut.ECHEC, Statut.ECHEC_PERMANENT],
            updated_at__gte=now - CREDENTIALS_WINDOW,
        )
        .order_by()
        .values_list("canal", flat=True)
        .distinct()
    )
    return [
        Incident(
            f"credentials:{canal}",
            f"{Canal(canal).label}: the provider rejects our credentials",
            f"Sending by {Canal(canal).label} failed because the provider rejected RadGestMat's credentials "
            f"in the last {int(CREDENTIALS_WINDOW.total_seconds() // 60)} minutes. Every message on this channel "
            "will fail until they are fixed in the environment (see docs/configuration.md).",
        )
        for canal in sorted(rejected)
    ]


def beat_incident(now: datetime) -> Incident | None:
    last = beat_last_tick(now)
    if not beat_stopped(last, now):
        return None
    since = (
        f"since {localtime(last):%Y-%m-%d %H:%M %Z}"
        if last
        else "ever (is the schedule registered? manage.py setup_schedule)"
    )
    return Incident(
        "beat",
        "beat has stopped: no notification is being planned or relayed",
        f"Celery beat has not started the relay {since}. Nothing planned is being sent. "
        "Start exactly one beat (systemctl start radgestmat-beat) and look at its log.",
    )


def current_incidents(now: datetime) -> list[Incident]:
    incidents = [failure_incident(now), *credential_incidents(now), beat_incident(now)]
    return [incident for incident in incidents if incident is not None]


def check_notification_alerts(*, now: datetime) -> dict[str, list[str]]:
    """Email the admins about each incident that just opened or closed. Returns the keys of both."""
    current = {incident.key: incident for incident in current_incidents(now)}
    opened, closed = [], []
    for key, incident in current.items():
        if not cache.add(incident_cache_key(key), now.isoformat(), timeout=None):
            continue  # already reported
        try:
            mail_admins(
                f"Alert: {incident.subject}", incident.body + f"\n\nDetected at {localtime(now):%Y-%m-%d %H:%M %Z}."
            )
        except Exception:
            cache.delete(incident_cache_key(key))
            raise
        logger.warning("alert opened: %s", incident.subject, extra={"incident": key})
        opened.append(key)
    for key in INCIDENT_KEYS:
        if key in current:
            continue
        if cache.get(incident_cache_key(key)) is None or not cache.delete(incident_cache_key(key)):
            continue
        mail_admins(f"Resolved: {key}", f"The incident “{key}” is over as of {localtime(now):%Y-%m-%d %H:%M %Z}.")
        logger.info("alert resolved: %s", key, extra={"incident": key})
        closed.append(key)
    return {"opened": opened, "closed": closed}
