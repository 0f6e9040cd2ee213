"""Access rules shared by every staff page, and the small helpers all staff lists use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme

from radgestmat.input import MAX_DB_INT, page_number

PER_PAGE = 50


def staff_required(view: Callable | None = None, *, perm: str | None = None) -> Callable:
    """Anonymous users go to the login page; logged-in users who are not staff (or lack ``perm``) get a 403."""

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.is_active or not user.is_staff or (perm and not user.has_perm(perm)):
                raise PermissionDenied
            return func(request, *args, **kwargs)

        return wrapper

    return decorator(view) if view is not None else decorator


def redirect_back(request: HttpRequest, target: str, default: str) -> HttpResponseRedirect:
    """Back to ``target`` (a staff form's ``next`` field), if that is a path on this site; else to ``default``."""
    # A path on this site only: `redirect()` would take any other word for a URL name (NoReverseMatch: 500).
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


@dataclass
class Page:
    """One page of a list, without counting the whole table (a COUNT over a million rows costs more than the page).

    We fetch one row more than we show to know whether there is a next page.
    """

    object_list: Sequence
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)


def paginate(request: HttpRequest, queryset, per_page: int = PER_PAGE) -> Page:
    number = page_number(request.GET.get("page"))
    offset = (number - 1) * per_page
    if offset + per_page + 1 > MAX_DB_INT:
        return Page([], number, False)  # beyond any table, and beyond what OFFSET accepts
    rows = list(queryset[offset : offset + per_page + 1])
    return Page(rows[:per_page], number, len(rows) > per_page)
