"""Readable differences between two fingerprints: one line per thing a person must fix.

``diff(actual, expected)`` says what ``actual`` lacks or has in excess compared with
``expected``, e.g. ``missing index idx_audit_outcome on audit_events``,
``column tokens.deactivated_at missing``, ``unexpected column tokens.foo``,
``column tokens.max_requests has type text, expected integer``.  An empty list means the
fingerprints are equal.  :func:`distance` ranks known states to name the nearest one: a
whole table missing or in excess weighs as much as all its columns, so a database that
lacks one index is nearer the state with that index than a state without one of its tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from llm_proxy_db.schema.fingerprint import OUR_TABLES, ColumnPrint, Fingerprint, TablePrint


def diff(actual: Fingerprint, expected: Fingerprint) -> list[str]:
    """What must change in ``actual`` to make it ``expected``; [] when they are equal."""
    lines = [
        f"{name} is a {kind}, not a table" if name in OUR_TABLES
        else f"{name} is a {kind}, under the name of one of the service's indexes or constraints"
        for name, kind in sorted(actual.other_kinds.items())
        if expected.other_kinds.get(name) != kind
    ]
    for name in sorted(set(expected.tables) | set(actual.tables)):
        if name not in actual.tables:
            lines.append(f"table {name} missing")
        elif name not in expected.tables:
            lines.append(f"unexpected table {name}")
        else:
            lines.extend(diff_table(name, actual.tables[name], expected.tables[name]))
    return lines


def distance(actual: Fingerprint, expected: Fingerprint) -> int:
    """How far ``actual`` is from ``expected``: diff lines, a whole table weighing its size."""
    whole = set(actual.tables) ^ set(expected.tables)
    sizes = sum(len({**actual.tables, **expected.tables}[name].columns) for name in whole)
    return len(diff(actual, expected)) + sizes


def diff_table(name: str, actual: TablePrint, expected: TablePrint) -> list[str]:
    """The differences inside one table."""
    return [
        *_columns(name, actual, expected),
        *_primary_key(name, actual, expected),
        *_sets(
            f"unique constraint on {name}",
            {f"({', '.join(cols)})" for cols in actual.unique},
            {f"({', '.join(cols)})" for cols in expected.unique},
        ),
        *_sets(
            f"foreign key {name}",
            {fk.describe() for fk in actual.foreign_keys},
            {fk.describe() for fk in expected.foreign_keys},
            separator="",
        ),
        *_indexes(name, actual, expected),
        *_sets(
            f"check constraint on {name}", set(actual.checks), set(expected.checks), separator=": "
        ),
        *_names(name, actual, expected),
    ]


def _names(table: str, actual: TablePrint, expected: TablePrint) -> Iterable[str]:
    for name in sorted(expected.constraint_names - actual.constraint_names):
        yield f"no constraint named {name} on {table} (revisions refer to it by name)"
    for name in sorted(actual.constraint_names - expected.constraint_names):
        yield f"unexpected constraint name {name} on {table}"


def _columns(table: str, actual: TablePrint, expected: TablePrint) -> Iterable[str]:
    for column in sorted(set(expected.columns) | set(actual.columns)):
        qualified = f"{table}.{column}"
        if column not in actual.columns:
            yield f"column {qualified} missing"
        elif column not in expected.columns:
            yield f"unexpected column {qualified}"
        else:
            yield from _column(qualified, actual.columns[column], expected.columns[column])


def _column(qualified: str, actual: ColumnPrint, expected: ColumnPrint) -> Iterable[str]:
    if actual.type != expected.type:
        yield f"column {qualified} has type {actual.type}, expected {expected.type}"
    if actual.nullable != expected.nullable:
        yield f"column {qualified} is {_nullability(actual)}, expected {_nullability(expected)}"
    if actual.default != expected.default:
        yield f"column {qualified} has default {_default(actual)}, expected {_default(expected)}"


def _primary_key(table: str, actual: TablePrint, expected: TablePrint) -> Iterable[str]:
    if actual.primary_key != expected.primary_key:
        yield (
            f"primary key of {table} is ({', '.join(actual.primary_key)}), "
            f"expected ({', '.join(expected.primary_key)})"
        )


def _indexes(table: str, actual: TablePrint, expected: TablePrint) -> Iterable[str]:
    for name in sorted(set(expected.indexes) | set(actual.indexes)):
        if name not in actual.indexes:
            yield f"missing index {name} on {table}"
        elif name not in expected.indexes:
            yield f"unexpected index {name} on {table}"
        elif actual.indexes[name] != expected.indexes[name]:
            have, want = actual.indexes[name], expected.indexes[name]
            yield (
                f"index {name} on {table} is {_index(have.columns, have.unique)}, "
                f"expected {_index(want.columns, want.unique)}"
            )


def _sets(what: str, actual: set[str], expected: set[str], separator: str = " ") -> Iterable[str]:
    for item in sorted(expected - actual):
        yield f"missing {what}{separator}{item}"
    for item in sorted(actual - expected):
        yield f"unexpected {what}{separator}{item}"


def _nullability(column: ColumnPrint) -> str:
    return "nullable" if column.nullable else "NOT NULL"


def _default(column: ColumnPrint) -> str:
    return "none" if column.default is None else column.default


def _index(columns: tuple[str, ...], unique: bool) -> str:
    return f"{'unique ' if unique else ''}on ({', '.join(columns)})"
