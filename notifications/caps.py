"""Per-channel daily caps (e.g. Twilio's free tier: 100 messages a day), shared by all workers through Redis.

The counter for a channel and a local day is a Redis key; when it is missing (first
send of the day, or Redis was flushed) it is rebuilt from the day's sent rows, so
Redis holds nothing the database cannot rebuild.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import cache

import redis
from django.conf import settings
from django.utils import timezone

from .channels import spec_of
from .models import NotificationLog, Statut

# Rows over the cap wait for this local hour of the next day, not for midnight.
RESUME_AT = time(8, 0)


def cap_for(canal: str) -> int:
    return spec_of(canal).daily_cap


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _start_of_day(now: datetime) -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))


def reserve(canal: str, *, now: datetime) -> bool:
    """Count one message on ``canal`` today; False (nothing counted) when the cap is reached."""
    cap = cap_for(canal)
    if not cap:
        return True
    client = _redis(settings.REDIS_URL)
    key = f"radgestmat:cap:{canal}:{timezone.localdate(now).isoformat()}"
    if not client.exists(key):
        sent_today = NotificationLog.objects.filter(
            canal=canal, statut=Statut.ENVOYEE, date_envoi__gte=_start_of_day(now)
        ).count()
        client.set(key, sent_today, nx=True, ex=2 * 24 * 3600)
    if client.incr(key) > cap:
        client.decr(key)
        return False
    return True


def next_window(now: datetime) -> datetime:
    """When capped rows try again: the next local day at RESUME_AT (DST-safe)."""
    tomorrow = timezone.localdate(now) + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, RESUME_AT))
