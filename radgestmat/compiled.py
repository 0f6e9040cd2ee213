"""The send path's hot statements without the ORM's compilation on every call.

Django compiles a queryset to SQL on every evaluation. The send task's load (six tables,
three subqueries) cost ~2.5 ms of compilation in a ~20 ms send (bench/support/profile_send.py)
for SQL that never changes but for its ids. `CompiledById` builds the queryset once per
number of ids, keeps the SQL and the compiler's description of the columns, and runs the
same SQL with the new ids through Django's own row-to-model machinery (`ModelIterable`):
select_related objects and annotations come out as from the queryset itself. Identical SQL
also lets psycopg prepare the statement on the server (``DB_PREPARED_STATEMENTS``).

It relies on how a queryset reaches its compiler (`Query.get_compiler`) and on the compiler
attributes `ModelIterable` reads; `radgestmat/tests/test_compiled.py` checks the results
against the plain queryset, so a Django upgrade that changes them fails there.

`update_by_ids` writes a send's outcome the same way: an UPDATE whose SQL is written, not compiled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet

# Stand-ins for the ids while compiling: values no table holds, found again among the parameters.
_PLACEHOLDER_BASE = -(2**62)


M = TypeVar("M", bound=Model)


class CompiledById(Generic[M]):
    """``load = CompiledById(lambda ids: Model.objects.select_related(...).filter(pk__in=ids))``, then
    ``load(ids)``: the same rows, in the same order, as ``list(build(ids))``."""

    def __init__(self, build: Callable[[list[int]], QuerySet[M]]):
        self._build = build
        self._compiled: dict[int, _Compiled[M]] = {}

    def __call__(self, ids: Sequence[int]) -> list[M]:
        if not ids:
            return []
        compiled = self._compiled.get(len(ids))
        if compiled is None or compiled.vendor != connections[compiled.template.db].vendor:
            compiled = self._compiled[len(ids)] = _Compiled(self._build, len(ids))
        if compiled.compiler is None:
            return list(self._build(list(ids)))
        return compiled.run(ids)


class _Compiled(Generic[M]):
    def __init__(self, build: Callable[[list[int]], QuerySet[M]], count: int):
        placeholders = [_PLACEHOLDER_BASE + index for index in range(count)]
        self.template = build(placeholders)
        self.vendor = connections[self.template.db].vendor
        compiler: Any = self.template.query.get_compiler(using=self.template.db)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        # Where each id goes among the parameters (an id may be used more than once, or not at all).
        self.slots = [
            (position, placeholders.index(value))
            for position, value in enumerate(self.params)
            if isinstance(value, int) and value in placeholders
        ]
        if {index for _position, index in self.slots} != set(range(count)):
            compiler = None  # the ids did not all come out as parameters: compile every time
        self.compiler = compiler

    def run(self, ids: Sequence[int]) -> list[M]:
        values = list(self.params)
        for position, index in self.slots:
            values[position] = ids[index]
        runner = copy.copy(self.compiler)
        runner.connection = connections[self.template.db]
        runner.as_sql = lambda *args, **kwargs: (self.sql, tuple(values))
        queryset: Any = self.template.all()  # a fresh clone: no results cached
        queryset.query.get_compiler = lambda *args, **kwargs: runner
        return list(queryset)


def update_by_ids(model: type[Model], ids: Sequence[int], *, only: dict[str, Any], values: dict[str, Any]) -> int:
    """``model.objects.filter(pk__in=ids, **only).update(**values)`` for plain values (no expressions),
    as one SQL statement written here instead of compiled by the ORM (~1 ms a send for the outcome and
    the "maybe accepted" mark): the same SQL for the same fields, so it is prepared on the server too.
    Values go through each field's own conversion (`get_db_prep_save`). Returns the rows updated."""
    if not ids:
        return 0
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    meta = model._meta
    fields: dict[str, Any] = {name: meta.get_field(name) for name in [*values, *only]}
    assignments = ", ".join(f"{quote(fields[name].column)} = %s" for name in values)
    conditions = " AND ".join(f"{quote(fields[name].column)} = %s" for name in only)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} "
        f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))})" + (f" AND {conditions}" if only else "")
    )
    params = [
        *(fields[name].get_db_prep_save(value, connection) for name, value in values.items()),
        *ids,
        *(fields[name].get_db_prep_save(value, connection) for name, value in only.items()),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
