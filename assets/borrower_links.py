"""The borrower's personal link: a signed token per loan and purpose, no account (docs/borrower-page.md).

A token is the loan's id and its ``borrower_link_version``, signed with SECRET_KEY (HMAC-SHA256)
and a salt per purpose, so a token made for one purpose (the page, the one-click
unsubscribe) is worthless for another, and none can be guessed or edited. Nothing is stored:
staff revoke a loan's links by moving its version on (`assets.services.revoke_borrower_link`);
the messages sent after that carry the new link. A link works while its loan is open and for
``BORROWER_LINK_DAYS_AFTER_RETURN`` days after the return.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import Attribution

PAGE = "page"
UNSUBSCRIBE = "unsubscribe"
PURPOSES = (PAGE, UNSUBSCRIBE)
# A dot, not Django's colon: the token sits in a URL path and in emails, where a colon gets escaped.
SEPARATOR = "."


class LinkState(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"  # not a token of ours for this purpose, or its loan is gone
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Resolved:
    state: LinkState
    attribution: Attribution | None = None


def _signer(purpose: str) -> signing.Signer:
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    return signing.Signer(salt=f"assets.borrower_links.{purpose}", sep=SEPARATOR)


def make_token(attribution: Attribution, purpose: str = PAGE) -> str:
    return _signer(purpose).sign_object([attribution.pk, attribution.borrower_link_version])


def link_expires_at(attribution: Attribution) -> datetime | None:
    """When the loan's links stop working: None while the loan is open."""
    if attribution.date_retour_effective is None:
        return None
    return attribution.date_retour_effective + timedelta(days=settings.BORROWER_LINK_DAYS_AFTER_RETURN)


def link_is_open(attribution: Attribution, now: datetime) -> bool:
    expires = link_expires_at(attribution)
    return expires is None or now < expires


def resolve(token: str, purpose: str, *, now: datetime) -> Resolved:
    """The loan ``token`` opens for ``purpose`` at ``now``, or why it opens nothing."""
    try:
        value = _signer(purpose).unsign_object(token)
    except (signing.BadSignature, ValueError):
        return Resolved(LinkState.INVALID)
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return Resolved(LinkState.INVALID)
    pk, version = value
    attribution = Attribution.objects.select_related("client", "materiel").filter(pk=pk).first()
    if attribution is None:
        return Resolved(LinkState.INVALID)
    if version != attribution.borrower_link_version:
        return Resolved(LinkState.REVOKED)
    if not link_is_open(attribution, now):
        return Resolved(LinkState.EXPIRED)
    return Resolved(LinkState.VALID, attribution)


def absolute(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def borrower_url(attribution: Attribution) -> str:
    """The absolute address of the loan's borrower page, for messages."""
    return absolute(reverse("borrower_page", args=[make_token(attribution, PAGE)]))


def unsubscribe_url(attribution: Attribution) -> str:
    """The absolute one-click unsubscribe address (RFC 8058), for the email headers."""
    return absolute(reverse("borrower_unsubscribe", args=[make_token(attribution, UNSUBSCRIBE)]))
