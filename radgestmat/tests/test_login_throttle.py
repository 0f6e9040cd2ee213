"""Password guessing is slowed down on the staff login and the admin login alike (counters in the real Redis cache)."""

from __future__ import annotations

import pytest
import redis
from django.core.cache import cache
from django.urls import reverse

from radgestmat.login import LoginThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery 42"
SPRAYED = [f"user{i}" for i in range(12)]


@pytest.fixture
def staff(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    return django_user_model.objects.create_user("guichet", password=PASSWORD, is_staff=True)


@pytest.fixture(autouse=True)
def clean_counters(settings):
    settings.LOGIN_FAILURE_LIMIT = 3

    def forget():
        for username in ["guichet", *SPRAYED]:
            for ip in ("127.0.0.1", "203.0.113.7", "198.51.100.9"):
                throttle = LoginThrottle(username, ip)
                cache.delete_many([throttle.pair_key, throttle.ip_key])

    forget()
    yield
    forget()


def attempt(client, password, url="login", username="guichet", **extra):
    return client.post(reverse(url), {"username": username, "password": password}, **extra)


def test_the_cache_is_redis():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches["default"], RedisCache)


def test_after_too_many_failures_even_the_right_password_is_refused_with_a_clear_message(client, staff):
    for _ in range(3):
        response = attempt(client, "wrong")
        assert response.status_code == 200
        assert "Too many failed" not in response.content.decode()

    response = attempt(client, PASSWORD)

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_clears_the_count(client, staff):
    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 302
    client.logout()

    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 302


def test_the_lockout_is_per_address_behind_the_proxy(client, settings, staff):
    settings.CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    for _ in range(3):
        attempt(client, "wrong", HTTP_X_REAL_IP="203.0.113.7")

    assert "Too many failed" in attempt(client, PASSWORD, HTTP_X_REAL_IP="203.0.113.7").content.decode()
    assert attempt(client, PASSWORD, HTTP_X_REAL_IP="198.51.100.9").status_code == 302


def test_one_address_trying_many_usernames_is_locked_out_too(client, staff):
    for username in SPRAYED:
        attempt(client, "wrong", username=username)

    assert "Too many failed" in attempt(client, PASSWORD).content.decode()


def test_the_lockout_ends_after_the_window(client, settings, staff):
    for _ in range(3):
        attempt(client, "wrong")
    throttle = LoginThrottle("guichet", "127.0.0.1")
    redis_client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    assert 0 < redis_client.ttl(cache.make_key(throttle.pair_key)) <= settings.LOGIN_LOCKOUT_MINUTES * 60
    cache.delete_many([throttle.pair_key])  # what Redis does when the TTL runs out

    assert attempt(client, PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_as_well(client, staff):
    staff.is_superuser = True
    staff.save()
    for _ in range(3):
        attempt(client, "wrong", url="admin:login")

    response = attempt(client, PASSWORD, url="admin:login")

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()


def test_behind_nginx_the_forwarded_for_entry_nginx_added_is_counted_not_the_clients_own(client, settings, staff):
    """GIVEN CLIENT_IP_HEADER=HTTP_X_FORWARDED_FOR, an attacker who sends a new fake X-Forwarded-For with
    each guess, THEN nginx's entry (the rightmost) is what counts, and the real address is locked out."""
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    for n in range(3):
        attempt(client, "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.7")

    response = attempt(client, PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7")

    assert "Too many failed" in response.content.decode()
    assert attempt(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.9").status_code == 302


def test_client_ip_takes_the_entry_of_the_outermost_trusted_proxy(settings, rf):
    from radgestmat.login import client_ip

    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    chain = "10.6.6.6, 203.0.113.7, 192.0.2.10"  # client's own, then the load balancer's, then nginx's
    settings.CLIENT_IP_TRUSTED_PROXIES = 1
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR=chain)) == "192.0.2.10"
    settings.CLIENT_IP_TRUSTED_PROXIES = 2
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR=chain)) == "203.0.113.7"
    # Fewer entries than proxies: it did not come through them all, so the peer's address counts.
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="10.6.6.6", REMOTE_ADDR="192.0.2.1")) == "192.0.2.1"
