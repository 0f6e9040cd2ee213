"""The borrower's pages: no account, a signed link per loan (`assets.borrower_links`, docs/borrower-page.md).

The only anonymous pages of the site besides login and the webhooks. Every request is counted per
link and per client address (`BORROWER_RATE_LIMIT_*`) before the link is even checked; a link
opens its own client's loans and nothing else; every POST but the RFC 8058 one-click
unsubscribe carries the CSRF token; the answers are never cached or sent on as a referrer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications.api import REMINDER_FLAGS, NotificationPreferences, preferences_of, stop_reminders
from radgestmat.login import client_ip
from radgestmat.ratelimit import hit

from . import borrower_links, services
from .borrower_links import LinkState
from .forms import BorrowerExtensionForm, BorrowerPreferencesForm
from .models import Attribution, ExtensionRequest

logger = logging.getLogger("radgestmat.security")

# Far longer than any token we make: anything longer is refused before it is hashed or unsigned.
MAX_TOKEN_LENGTH = 200
# What the page says after a POST (Post/Redirect/Get): a fixed word in the query, never free text.
DONE = ("requested", "granted", "preferences")


def admitted(request: HttpRequest, token: str) -> bool:
    """Count this request against its link and its address; False once either is over its limit."""
    window = settings.BORROWER_RATE_WINDOW_MINUTES * 60
    digest = hashlib.sha256(token.encode(errors="replace")).hexdigest()[:32]
    ip = client_ip(request)
    try:
        per_token = hit(f"borrower:token:{digest}", window)
        per_ip = hit(f"borrower:ip:{ip}", window)
    except Exception:
        logger.warning("borrower page rate limit: cache unreachable, not limiting", exc_info=True)
        return True
    if per_token > settings.BORROWER_RATE_LIMIT_PER_TOKEN or per_ip > settings.BORROWER_RATE_LIMIT_PER_IP:
        logger.warning("borrower page rate limited", extra={"ip": ip})
        return False
    return True


def _private(response: HttpResponse, language: str) -> HttpResponse:
    # The token is in the path: no cache keeps the page, no other site it links to learns the address.
    # Not "no-referrer": Chromium then sends "Origin: null" with the page's own forms, and CSRF refuses them.
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Content-Language"] = language
    return response


def _language_of(attribution: Attribution | None) -> str:
    language = attribution.client.language if attribution is not None else ""
    return language if language in dict(settings.LANGUAGES) else translation.get_language() or settings.LANGUAGE_CODE


def problem(request: HttpRequest, kind: str, status: int) -> HttpResponse:
    """The page for a link that opens nothing (or a request refused), saying why in the visitor's words."""
    return render(
        request, "borrower/problem.html", {"problem": kind, "organisation": settings.ORGANISATION_NAME}, status=status
    )


def borrower_view(purpose: str) -> Callable:
    """Rate-limit, open the link for ``purpose``, and render in the borrower's language; refuse otherwise."""

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(request: HttpRequest, token: str) -> HttpResponse:
            if not admitted(request, token):
                language = _language_of(None)
                response = problem(request, "throttled", 429)
                response["Retry-After"] = str(settings.BORROWER_RATE_WINDOW_MINUTES * 60)
                return _private(response, language)
            now = timezone.now()
            resolved = (
                borrower_links.resolve(token, purpose, now=now)
                if len(token) <= MAX_TOKEN_LENGTH
                else borrower_links.Resolved(LinkState.INVALID)
            )
            language = _language_of(resolved.attribution)
            with translation.override(language):
                if resolved.state != LinkState.VALID or resolved.attribution is None:
                    status = 404 if resolved.state == LinkState.INVALID else 410
                    response = problem(request, resolved.state.value, status)
                else:
                    response = func(request, resolved.attribution, token, now)
            return _private(response, language)

        return wrapper

    return decorator


def page_context(attribution: Attribution, token: str, now: datetime, **extra) -> dict:
    client = attribution.client
    loans = list(
        Attribution.objects.open().filter(client=client).select_related("materiel").order_by("date_retour_prevue")
    )
    if not attribution.is_open:
        loans.insert(0, attribution)  # the link's own loan, just returned: shown as such while the link lasts
    pending = {
        request.attribution_id: request
        for request in ExtensionRequest.objects.filter(
            attribution__in=[loan.pk for loan in loans], statut=ExtensionRequest.Statut.EN_ATTENTE
        )
    }
    rows = [
        {
            "loan": loan,
            "overdue": loan.is_overdue(now),
            "remaining": loan.time_remaining(now),
            "pending": pending.get(loan.pk),
            "form": extra.get("forms", {}).get(loan.pk)
            or BorrowerExtensionForm(initial={"loan": loan.pk, "new_due": services.default_extension_due(loan)}),
        }
        for loan in loans
    ]
    prefs = preferences_of(client)
    return {
        "client": client,
        "rows": rows,
        "now": now,
        "token": token,
        "has_phone": bool(prefs.phone_number or client.phone),
        "reminders_on": any(getattr(prefs, flag) for flag in REMINDER_FLAGS.values()),
        "preferences_form": extra.get("preferences_form") or BorrowerPreferencesForm(instance=prefs),
        "organisation": settings.ORGANISATION_NAME,
        "return_desk": getattr(settings, "ORGANISATION_RETURN_DESK", ""),
        "opening_hours": getattr(settings, "ORGANISATION_OPENING_HOURS", ""),
        "reply_to": settings.ORGANISATION_REPLY_TO,
        "done": extra.get("done", ""),
        "unsubscribe_path": reverse(
            "borrower_unsubscribe", args=[borrower_links.make_token(attribution, borrower_links.UNSUBSCRIBE)]
        ),
        "requires_approval": settings.EXTENSION_REQUIRES_APPROVAL,
    }


@require_GET
@borrower_view(borrower_links.PAGE)
def page(request: HttpRequest, attribution: Attribution, token: str, now: datetime) -> HttpResponse:
    done = request.GET.get("done", "")
    return render(
        request, "borrower/page.html", page_context(attribution, token, now, done=done if done in DONE else "")
    )


@require_POST
@borrower_view(borrower_links.PAGE)
def extend(request: HttpRequest, attribution: Attribution, token: str, now: datetime) -> HttpResponse:
    form = BorrowerExtensionForm(request.POST)
    if form.is_valid():
        # Only a loan of the link's own client: any other id is "not found", like a wrong link.
        loan = (
            Attribution.objects.open()
            .filter(client_id=attribution.client_id, pk=form.cleaned_data["loan"])
            .select_related("materiel", "client")
            .first()
        )
        if loan is None:
            return problem(request, LinkState.INVALID.value, 404)
        try:
            made = services.request_extension(
                loan, now=now, new_due=form.cleaned_data["new_due"], source=ExtensionRequest.Source.PAGE
            )
        except ValidationError as error:
            on_the_time = getattr(error, "error_dict", {}).get("new_due")
            form.add_error("new_due" if on_the_time else None, on_the_time or error.messages)
        else:
            done = "granted" if made.statut == ExtensionRequest.Statut.ACCORDEE else "requested"
            return redirect(f"{reverse('borrower_page', args=[token])}?done={done}#loan-{loan.pk}")
        forms = {loan.pk: form}
    elif form.cleaned_data.get("loan"):
        forms = {form.cleaned_data["loan"]: form}  # shown only if it is one of the client's loans
    else:
        return problem(request, "bad_request", 400)
    return render(request, "borrower/page.html", page_context(attribution, token, now, forms=forms), status=400)


@require_POST
@borrower_view(borrower_links.PAGE)
def preferences(request: HttpRequest, attribution: Attribution, token: str, now: datetime) -> HttpResponse:
    prefs, _created = NotificationPreferences.objects.get_or_create(client=attribution.client)
    form = BorrowerPreferencesForm(request.POST, instance=prefs)
    if form.is_valid():
        form.save()
        return redirect(f"{reverse('borrower_page', args=[token])}?done=preferences#preferences")
    return render(
        request, "borrower/page.html", page_context(attribution, token, now, preferences_form=form), status=400
    )


# RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" with no cookie, so no CSRF token can come
# with it; the single-purpose unsubscribe token in the address is the proof, and all it can do is stop reminders.
@csrf_exempt
@require_http_methods(["GET", "POST"])
@borrower_view(borrower_links.UNSUBSCRIBE)
def unsubscribe(request: HttpRequest, attribution: Attribution, token: str, now: datetime) -> HttpResponse:
    if request.method == "POST":
        stop_reminders(attribution.client)
        return render(
            request,
            "borrower/unsubscribed.html",
            {"client": attribution.client, "done": True, "organisation": settings.ORGANISATION_NAME},
        )
    # A GET (a link followed, a mail scanner) changes nothing: it asks.
    return render(
        request,
        "borrower/unsubscribed.html",
        {"client": attribution.client, "done": False, "organisation": settings.ORGANISATION_NAME},
    )
