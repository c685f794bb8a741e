"""The statements that would bring a schema back to its reference, in the database's own SQL.

Each :class:`~llm_proxy_db.schema.schema_diff.Difference` that is drift (something missing or
changed; an extra object is an operator's, never reconciled away) gets either statements
(rendered by Alembic's operations in offline mode for the dialect: ``CREATE INDEX ...``,
``ALTER TABLE ... ADD COLUMN ...``, ``ALTER TABLE ... ALTER COLUMN ...``) or a note saying why
no statement can be given safely (a changed column on SQLite needs a table rebuild; a missing
table or constraint is restored from a backup or by the revisions, not by hand).  Nothing is
ever run: ``migrate drift`` only prints them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.schema.fingerprint import ColumnPrint, IndexPrint
from llm_proxy_db.schema.schema_diff import CHANGED, MISSING, Difference

_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "text": sa.Text,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "boolean": sa.Boolean,
    "datetime": sa.DateTime,
    "datetime with time zone": lambda: sa.DateTime(timezone=True),
    "date": sa.Date,
    "uuid": sa.Uuid,
}
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Reconciliation:
    """The statements for one difference, or why there are none; ``safe`` is False when they may
    fail or rewrite data on a table with rows (a NOT NULL column without default, a type change)."""

    statements: tuple[str, ...] = ()
    note: str | None = None
    safe: bool = True


def reconcile(difference: Difference, dialect_name: str, existing: ColumnPrint | None = None) -> Reconciliation:
    """What would make the actual schema have ``difference``'s expected side, on ``dialect_name``.

    ``existing``: the column as it is, for a changed column (``ALTER`` restates it where the
    dialect needs the whole definition).
    """
    if difference.object == "index":
        return _index(difference, dialect_name)
    if difference.object == "column":
        return _column(difference, dialect_name, existing)
    if difference.object == "table" and difference.kind == MISSING:
        return Reconciliation(note="a whole table is missing: restore it from a backup (llm-proxy-db db restore)")
    return Reconciliation(
        note=f"no statement is given for a {difference.object.replace('_', ' ')}: it is part of a table's "
        "definition that the revisions own; compare with the revision's SQL (migrate up --sql)"
    )


def _index(difference: Difference, dialect_name: str) -> Reconciliation:
    def ops(op: Operations) -> None:
        if difference.kind == CHANGED:
            op.drop_index(difference.name, table_name=difference.table)
        wanted: IndexPrint = difference.expected
        op.create_index(difference.name, difference.table, list(wanted.columns), unique=wanted.unique)

    return Reconciliation(render(dialect_name, ops))


def _column(difference: Difference, dialect_name: str, existing: ColumnPrint | None) -> Reconciliation:
    table, name = difference.table, difference.name
    if difference.kind == MISSING:
        wanted: ColumnPrint = difference.expected
        column = _sa_column(name, wanted)
        if column is None:
            return Reconciliation(note=f"the type {wanted.type} has no portable spelling: add the column by hand")
        risky = not wanted.nullable and wanted.default is None
        note = None
        if risky:
            note = "fails on a table with rows (NOT NULL without a default): add it nullable, fill it, set NOT NULL"
        return Reconciliation(render(dialect_name, lambda op: op.add_column(table, column)), note, safe=not risky)
    if dialect_for(dialect_name).BATCH_ALTER:
        return Reconciliation(
            note=f"{dialect_name} cannot change a column in place: it needs a table rebuild (copy the table, "
            "as the revisions do); no statement is given",
            safe=False,
        )
    return _alter(difference, dialect_name, existing)


def _alter(difference: Difference, dialect_name: str, existing: ColumnPrint | None) -> Reconciliation:
    """``ALTER COLUMN`` for a changed type, nullability or default (dialects that alter in place)."""
    field, wanted = difference.field, difference.expected
    have = existing or ColumnPrint("text", True, None, False)
    existing_type = _TYPES.get(have.type, sa.Text)()
    kwargs: dict[str, Any] = {
        "existing_type": existing_type,
        "existing_nullable": have.nullable,
        "existing_server_default": _default(have.default, have.type),
    }
    if field == "type":
        new_type = _TYPES.get(wanted)
        if new_type is None:
            return Reconciliation(note=f"the type {wanted} has no portable spelling: change it by hand", safe=False)
        kwargs["type_"] = new_type()
    elif field == "nullable":
        kwargs["nullable"] = wanted
    else:
        kwargs["server_default"] = _default(wanted, have.type)
    statements = render(dialect_name, lambda op: op.alter_column(difference.table, difference.name, **kwargs))
    note = None
    if field == "type":
        note = "rewrites the column: values that do not fit make it fail"
    elif field == "nullable" and wanted is False:
        note = "fails while the column holds NULLs: fill them first"
    return Reconciliation(statements, note, safe=field == "default" or (field == "nullable" and wanted is True))


def _sa_column(name: str, wanted: ColumnPrint) -> sa.Column[Any] | None:
    make = _TYPES.get(wanted.type)
    if make is None:
        return None
    default = _default(wanted.default, wanted.type)
    return sa.Column(name, make(), nullable=wanted.nullable, server_default=default)


def _default(value: str | None, type_name: str) -> Any:
    """A normalised default (see ``fingerprint.normalise_default``) as a server default."""
    if value is None:
        return None
    if type_name == "boolean" and value in ("true", "false"):
        return sa.true() if value == "true" else sa.false()
    if value == "current_timestamp":
        return sa.text("CURRENT_TIMESTAMP")
    if _NUMBER.fullmatch(value):
        return sa.text(value)
    return value


def render(dialect_name: str, ops: Callable[[Operations], None]) -> tuple[str, ...]:
    """The SQL Alembic's operations in ``ops`` would run on ``dialect_name``, one statement each."""
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True}
    )
    ops(Operations(context))
    return tuple(" ".join(part.split()) + ";" for part in buffer.getvalue().split(";\n") if part.strip())
