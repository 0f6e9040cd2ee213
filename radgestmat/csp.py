"""Content-Security-Policy on every response (Django 5.2 has none built in).

The policy (``CONTENT_SECURITY_POLICY``) allows scripts, styles, images and requests from
this site only: no inline ``<script>``, no ``style=""`` attribute, no ``on…=`` handler, no
CDN. Our pages keep their scripts and styles in static files (the dashboard chart is inline
SVG, whose presentation attributes are not styles). A template that cannot avoid an inline
script (a third-party admin page we override) gives it ``nonce="{{ request.csp_nonce }}"``:
``{nonce}`` in the policy becomes a fresh random value per request.

Django's own debug pages (DEBUG=1, 404 and 500) are full of inline styles and scripts, so
they are served without the header.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]  # our own attribute, read by the templates
        response = self.get_response(request)
        if settings.DEBUG and response.status_code >= 400:
            return response
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = policy.replace("{nonce}", nonce)
        return response
