"""Structured differences between two fingerprints, and a reference translated between dialects.

:mod:`llm_proxy_db.schema.fingerprint_diff` words differences for people; this module keeps
them as data (:class:`Difference`: what object, which side has it, the two values) so that
``migrate drift`` can classify each one, write the statement that reconciles it, and carry
one database's deviations from its revision over to another dialect:
:func:`translate` applies the reference's deviations to this dialect's fingerprint of the
same revision, so a SQLite file and a PostgreSQL database at the same revision, with the same
additions, compare equal although their raw fingerprints differ (types, constraint names,
nullability of a SQLite ``TEXT PRIMARY KEY``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from llm_proxy_db.schema.fingerprint import ColumnPrint, Fingerprint, TablePrint

MISSING, EXTRA, CHANGED = "missing", "extra", "changed"
_COLUMN_FIELDS = ("type", "nullable", "default")


@dataclass(frozen=True)
class Difference:
    """One object that differs: ``missing`` from the actual schema, ``extra`` in it, or ``changed``.

    ``object`` is ``table``, ``column``, ``index``, ``unique``, ``foreign_key``, ``check``,
    ``primary_key`` or ``constraint_name``; ``field`` names the column property that changed
    (``type``, ``nullable``, ``default``).  ``actual``/``expected`` are the two values (None on
    the side that lacks the object).
    """

    kind: str
    object: str
    table: str
    name: str
    actual: Any = None
    expected: Any = None
    field: str | None = None

    def describe(self) -> str:
        """One line: ``missing index idx_x on tokens``, ``column tokens.x: type bigint, expected integer``."""
        if self.object == "revision":
            return f"revision {self.actual or 'base'}, the reference is at {self.expected or 'base'}"
        where = f"{self.table}.{self.name}" if self.object == "column" else f"{self.name} on {self.table}"
        if self.object == "table":
            where = self.name
        if self.kind == CHANGED:
            what = f"{self.field} " if self.field else ""
            noun = self.object.replace("_", " ")
            return f"{noun} {where}: {what}{_show(self.actual)}, expected {_show(self.expected)}"
        return f"{self.kind} {self.object.replace('_', ' ')} {where}"


def differences(actual: Fingerprint, expected: Fingerprint) -> list[Difference]:
    """Every difference that makes ``actual`` other than ``expected`` (our tables only)."""
    found: list[Difference] = []
    for name in sorted(set(actual.tables) | set(expected.tables)):
        have, want = actual.tables.get(name), expected.tables.get(name)
        if have is None or want is None:
            found.append(Difference(MISSING if have is None else EXTRA, "table", name, name, have, want))
        else:
            found.extend(_table(name, have, want))
    return found


def _table(table: str, have: TablePrint, want: TablePrint) -> Iterator[Difference]:
    yield from _columns(table, have.columns, want.columns)
    if have.primary_key != want.primary_key:
        yield Difference(CHANGED, "primary_key", table, "primary key", have.primary_key, want.primary_key)
    yield from _keyed(table, "index", dict(have.indexes), dict(want.indexes))
    for kind, have_set, want_set in (
        ("unique", {", ".join(c): c for c in have.unique}, {", ".join(c): c for c in want.unique}),
        ("foreign_key", {k.describe(): k for k in have.foreign_keys}, {k.describe(): k for k in want.foreign_keys}),
        ("check", {c: c for c in have.checks}, {c: c for c in want.checks}),
        ("constraint_name", {n: n for n in have.constraint_names}, {n: n for n in want.constraint_names}),
    ):
        yield from _keyed(table, kind, have_set, want_set)


def _columns(table: str, have: Mapping[str, ColumnPrint], want: Mapping[str, ColumnPrint]) -> Iterator[Difference]:
    for name in sorted(set(have) | set(want)):
        if name not in have or name not in want:
            kind = MISSING if name not in have else EXTRA
            yield Difference(kind, "column", table, name, have.get(name), want.get(name))
            continue
        for field in _COLUMN_FIELDS:
            if getattr(have[name], field) != getattr(want[name], field):
                yield Difference(
                    CHANGED, "column", table, name, getattr(have[name], field), getattr(want[name], field), field
                )


def _keyed(table: str, kind: str, have: Mapping[str, Any], want: Mapping[str, Any]) -> Iterator[Difference]:
    for name in sorted(set(have) | set(want)):
        if name not in have:
            yield Difference(MISSING, kind, table, name, None, want[name])
        elif name not in want:
            yield Difference(EXTRA, kind, table, name, have[name], None)
        elif have[name] != want[name]:
            yield Difference(CHANGED, kind, table, name, have[name], want[name])


def translate(base: Fingerprint, deviations: list[Difference], *, names: bool = True) -> Fingerprint:
    """``base`` with ``deviations`` (another database's differences from the same revision) applied.

    ``names=False`` drops constraint-name deviations (the target dialect names no constraints).
    """
    tables = {name: table for name, table in base.tables.items()}
    for deviation in deviations:
        if deviation.object == "constraint_name" and not names:
            continue
        if deviation.object == "table":
            _set(tables, deviation.name, deviation.actual)
        elif deviation.table in tables:
            tables[deviation.table] = _apply(tables[deviation.table], deviation)
    return replace(base, tables=tables)


def _apply(table: TablePrint, deviation: Difference) -> TablePrint:
    name, value = deviation.name, deviation.actual
    if deviation.object == "column":
        columns = dict(table.columns)
        if deviation.field and name in columns:
            value = replace(columns[name], **{deviation.field: value})
        _set(columns, name, value)
        return replace(table, columns=columns)
    if deviation.object == "primary_key":
        columns = {col: replace(print_, primary_key=col in value) for col, print_ in table.columns.items()}
        return replace(table, columns=columns)
    if deviation.object == "index":
        indexes = dict(table.indexes)
        _set(indexes, name, value)
        return replace(table, indexes=indexes)
    attribute = {"unique": "unique", "foreign_key": "foreign_keys", "check": "checks"}.get(
        deviation.object, "constraint_names"
    )
    current = set(getattr(table, attribute))
    old = deviation.expected
    current.discard(old)
    if value is not None:
        current.add(value)
    changed: dict[str, Any] = {attribute: frozenset(current)}
    return replace(table, **changed)


def _set(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "nullable" if value else "NOT NULL"
    if isinstance(value, tuple):
        return f"({', '.join(map(str, value))})"
    if hasattr(value, "columns") and hasattr(value, "unique"):
        return f"{'unique ' if value.unique else ''}on ({', '.join(value.columns)})"
    return str(value)


def as_json(value: Any) -> Any:
    """A difference's value in JSON form (column and index prints as objects)."""
    if isinstance(value, ColumnPrint):
        return {
            "type": value.type, "nullable": value.nullable, "default": value.default, "primary_key": value.primary_key
        }
    if hasattr(value, "columns") and hasattr(value, "unique") and not isinstance(value, TablePrint):
        return {"columns": list(value.columns), "unique": value.unique}
    if isinstance(value, TablePrint):
        return {"columns": sorted(value.columns)}
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "describe"):
        return value.describe()
    return value
