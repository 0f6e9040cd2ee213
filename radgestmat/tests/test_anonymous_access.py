"""Every URL of the URLconf refuses anonymous visitors (and non-staff accounts), except the few that must be public.

The URLs are enumerated from the resolver at test time, so a page added later is
covered without anyone remembering to list it here.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

pytestmark = pytest.mark.django_db

# The only URL names anyone may reach without logging in.
PUBLIC = {
    "login",
    "logout",
    "admin:login",
    "admin:logout",
    "set_language",
    "healthz",
    "twilio_status_callback",
    "twilio_inbound_message",
}
# The borrower's pages: anonymous by design, opened by the signed token of a loan's link instead of a
# login; assets/tests/test_borrower_access.py proves a missing, forged, other loan's, expired or revoked
# token opens nothing.
BORROWER_PAGES = {"borrower_page", "borrower_extend", "borrower_preferences", "borrower_unsubscribe"}
# A value for each kind of URL parameter.
CONVERTER_SAMPLES = {"int": "1", "str": "x", "slug": "x", "path": "1", "uuid": "00000000-0000-0000-0000-000000000000"}
REGEX_SAMPLES = ["1", "x"]
ROUTE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
REGEX_GROUP = re.compile(r"\(\?P<(\w+)>([^()]*)\)")


def part_of(pattern) -> str:
    """One URL segment for ``pattern`` (a route or a regex), with sample values in its parameters."""
    if isinstance(pattern, RoutePattern):
        return ROUTE_PARAM.sub(lambda m: CONVERTER_SAMPLES[m.group(1) or "str"], str(pattern))

    def sample(match):
        body = match.group(2)
        for candidate in [*REGEX_SAMPLES, body.split("|")[0]]:
            if re.fullmatch(body, candidate):
                return candidate
        raise AssertionError(f"no sample value matches ({body}) in {pattern}")

    return REGEX_GROUP.sub(sample, str(pattern)).lstrip("^").rstrip("$").replace("\\", "")


def all_urls() -> list[tuple[str, str]]:
    """(name, concrete URL) for every pattern of the URLconf, named or not, included or not."""
    urls = []

    def walk(resolver, prefix, namespace):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern, prefix + part_of(pattern.pattern), ns)
                continue
            url = "/" + prefix + part_of(pattern.pattern)
            name = f"{namespace}{pattern.name}" if pattern.name else url
            assert resolve(url).func == pattern.callback, f"{url} does not lead to {name}: fix the samples"
            urls.append((name, url))

    walk(get_resolver(), "", "")
    return urls


URLS = all_urls()


def test_the_enumeration_sees_the_whole_site():
    names = {name for name, _ in URLS}
    assert {"home", "login", "healthz", "twilio_status_callback", "admin:index"} <= names
    assert len(URLS) > 20


def refused(response) -> bool:
    if response.status_code in (301, 302):
        return "login" in urlsplit(response["Location"]).path
    return response.status_code in (401, 403, 405)


@pytest.mark.parametrize(
    "name,url", [(n, u) for n, u in URLS if n not in PUBLIC | BORROWER_PAGES], ids=lambda v: str(v)
)
def test_anonymous_visitors_are_refused(client, name, url):
    for method in (client.get, client.post):
        response = method(url)
        assert refused(response), (
            f"{method.__name__.upper()} {url} ({name}) answered {response.status_code} to an anonymous visitor"
        )


@pytest.mark.parametrize(
    "name,url", [(n, u) for n, u in URLS if n not in PUBLIC | BORROWER_PAGES], ids=lambda v: str(v)
)
def test_logged_in_non_staff_users_are_refused_too(client, django_user_model, name, url):
    client.force_login(django_user_model.objects.create_user("borrower-account"))
    for method in (client.get, client.post):
        response = method(url)
        assert refused(response), (
            f"{method.__name__.upper()} {url} ({name}) answered {response.status_code} to a non-staff user"
        )


@pytest.mark.parametrize("name,url", [(n, u) for n, u in URLS if n in BORROWER_PAGES], ids=lambda v: str(v))
def test_the_borrower_pages_open_nothing_without_a_valid_token(client, name, url):
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code in (403, 404, 405), (
            f"{method.__name__.upper()} {url} ({name}) answered {response.status_code} without a token"
        )


def test_the_borrower_pages_are_the_allowlisted_ones():
    assert {name for name, _ in URLS if name.startswith("borrower_")} == BORROWER_PAGES
