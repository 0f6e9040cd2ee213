"""Parsing what staff (or anyone) put in a URL: one place for ids, page numbers, days and NUL bytes.

Every rule here exists because the naive version answered 500: ``"²".isdigit()`` is true
but ``int("²")`` fails; a 20-digit id or page overflows SQLite's and PostgreSQL's 64-bit
integers; PostgreSQL refuses NUL in text; ``date(9999, 12, 31) + 1 day`` and a local
midnight of year 1 converted to UTC overflow Python's dates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from django import forms
from django.contrib.admin import DateFieldListFilter, ModelAdmin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# The largest value of a 64-bit signed integer column: ids (BigAutoField) and OFFSETs on SQLite and PostgreSQL.
MAX_DB_INT = 2**63 - 1
# Days staff may filter on: far enough inside Python's date range that "the next day" and
# a local midnight converted to UTC always exist.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)


def parse_int(value: str | None, *, minimum: int = 1, maximum: int = MAX_DB_INT) -> int | None:
    """``value`` as an int in [minimum, maximum] if it is plain ASCII digits, else None (never raises)."""
    value = (value or "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > len(str(maximum)):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def parse_id(value: str | None) -> int | None:
    """A database id typed in a URL or a form, or None when it cannot be one."""
    return parse_int(value)


def page_number(value: str | None) -> int:
    """The page asked for; anything that is not a page number is the first page."""
    return parse_int(value) or 1


class DayField(forms.DateField):
    """A date filter limited to `FIRST_DAY`–`LAST_DAY`, with a clear error outside."""

    default_error_messages = {
        "out_of_range": gettext_lazy("Enter a date between %(first)s and %(last)s."),
    }

    def validate(self, value: date | None) -> None:
        super().validate(value)
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(
                self.error_messages["out_of_range"],
                code="out_of_range",
                params={"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
            )


class RefuseNulMiddleware:
    """A NUL byte in a query parameter is refused with 400 before any view runs.

    PostgreSQL cannot store or compare text holding NUL (psycopg raises), so any search
    box reached the database and answered 500. No legitimate value contains one. Posted
    forms are not concerned: Django's form fields refuse NUL with a field error.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise BadRequest(_("A parameter of this address contains a NUL character."))
        return self.get_response(request)


def check_date_hierarchy(field: str, query) -> None:
    """Raise IncorrectLookupParameters unless the admin's ``<field>__year/month/day`` make a day in range.

    Django's ChangeList only catches ValueError there: a 20-digit year raises
    OverflowError, and year 9999 overflows when it computes the next year.
    """
    year = query.get(f"{field}__year")
    if year is None:
        return
    parts = (
        parse_int(year, maximum=LAST_DAY.year),
        parse_int(query.get(f"{field}__month", "1"), maximum=12),
        parse_int(query.get(f"{field}__day", "1"), maximum=31),
    )
    try:
        if None in parts or not FIRST_DAY <= date(*parts):
            raise ValueError(year)
    except ValueError as error:
        raise IncorrectLookupParameters(error) from error


def check_date_filter(used_parameters: dict) -> None:
    """Raise IncorrectLookupParameters for a date list filter's bound outside `FIRST_DAY`–`LAST_DAY`.

    ``0001-01-01`` is a valid date, but its local midnight has no UTC value: the query overflows.
    """
    for name, values in used_parameters.items():
        if name.endswith("__isnull"):
            continue
        for value in values if isinstance(values, list) else [values]:
            try:
                parsed = parse_datetime(value) or parse_date(value)
            except (TypeError, ValueError):
                parsed = None  # Django's own validation refuses it
            day = parsed.date() if isinstance(parsed, datetime) else parsed
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                raise IncorrectLookupParameters(f"{name}={value} is out of range")


class BoundedChangeList(ChangeList):
    """The admin's change list, with its date hierarchy and date filters checked first (bad ones: the admin's ?e=1)."""

    def get_filters(self, request):
        if self.date_hierarchy:
            check_date_hierarchy(self.date_hierarchy, request.GET)
        filters = super().get_filters(request)
        for spec in filters[0]:
            if isinstance(spec, DateFieldListFilter):
                check_date_filter(spec.used_parameters)
        return filters


def use_bounded_changelists(site) -> None:
    """Give every ModelAdmin of ``site`` that uses Django's ChangeList (ours and third-party apps') the bounded one."""
    for model_admin in site._registry.values():
        if type(model_admin).get_changelist is ModelAdmin.get_changelist:
            model_admin.get_changelist = lambda request, **kwargs: BoundedChangeList
