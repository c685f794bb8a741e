"""What a SQLite table rebuild must carry over: the operator's columns, indexes, triggers and views.

A rebuild (new table, copy, drop, rename) knows only the columns and indexes its revision
defines.  Operators add their own now and then (reference section 6): a column such as
``tokens.owner_email``, an index on it, a trigger, a view.  Dropping the old table drops its
indexes and triggers silently, and a view naming the table makes the final rename fail.  So
before a rebuild changes anything, :func:`survey` lists what the live table has beyond the
revision's definition:

- extra columns are copied with their declared type, ``NOT NULL`` and default; a column that a
  foreign key, a UNIQUE or primary key constraint, a CHECK or a generated expression involves
  cannot be carried over faithfully, so the rebuild refuses, naming it, before any change;
- extra indexes (and any index on a column the revision drops: refused, named) are recreated
  from their stored SQL after the copy;
- triggers and views that name the table are dropped before the copy and recreated from their
  stored SQL after it; a view that no longer compiles stops the revision (rolled back), named.
  SQLite compiles a trigger's body only when it fires: one naming a dropped column is recreated
  as it was and fails at its next firing, as it would after any ``ALTER TABLE DROP COLUMN``.

``drops`` names the columns and indexes the revision itself removes (0005's downgrade drops
``tokens.id`` and ``idx_tokens_token``); they are not the operator's.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.errors import MigrationError


class DeclaredType(sa.types.UserDefinedType[object]):
    """A column type rendered exactly as SQLite stored its declaration (``TEXT``, ``VARCHAR(3)``)."""

    cache_ok = True

    def __init__(self, declared: str) -> None:
        self.declared = declared

    def get_col_spec(self, **_: object) -> str:
        """The declaration as written."""
        return self.declared


@dataclass(frozen=True)
class Kept:
    """What a rebuild of one table carries over: extra columns, and SQL to replay afterwards."""

    columns: tuple[sa.Column[object], ...] = ()
    indexes: tuple[tuple[str, str], ...] = ()
    dependents: tuple[tuple[str, str, str], ...] = ()  # (type, name, sql) of triggers and views

    def describe(self) -> list[str]:
        """One phrase per kept object, for messages."""
        return [
            *(f"column {column.name}" for column in self.columns),
            *(f"index {name}" for name, _ in self.indexes),
            *(f"{kind} {name}" for kind, name, _ in self.dependents),
        ]


def survey(bind: Connection, table: sa.Table, drops: Collection[str] = ()) -> Kept:
    """What ``table``'s live namesake has that the rebuild must keep; refuses what it cannot."""
    info = bind.exec_driver_sql(f'PRAGMA table_xinfo("{table.name}")').all()
    known = {column.name for column in table.columns} | set(drops)
    extra = [row for row in info if row[1] not in known]
    _refuse_constrained(bind, table.name, extra, info)
    columns = tuple(
        sa.Column(row[1], DeclaredType(row[2]), nullable=not row[3],
                  server_default=sa.text(row[4]) if row[4] is not None else None)
        for row in extra
    )
    return Kept(columns, _extra_indexes(bind, table, drops), _dependents(bind, table.name))


def _refuse_constrained(bind: Connection, name: str, extra: Sequence[Any], info: Sequence[Any]) -> None:
    names = {row[1] for row in extra}
    involved = {row[1] for row in extra if row[6] not in (0,)}  # hidden: generated or virtual
    involved |= {row[1] for row in info if row[1] in names and row[5]}  # primary key
    for fk in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")'):
        involved |= {fk[3]} & names
    for index in bind.exec_driver_sql(f'PRAGMA index_list("{name}")'):
        if index[3] in ("u", "pk"):
            cols = {row[2] for row in bind.exec_driver_sql(f'PRAGMA index_info("{index[1]}")')}
            involved |= cols & names
    checks = sa.inspect(bind).get_check_constraints(name)
    for column in names:
        if any(re.search(rf"\b{re.escape(column)}\b", check["sqltext"]) for check in checks):
            involved.add(column)
    if involved:
        raise MigrationError(
            f"table {name} has column(s) {', '.join(sorted(involved))} that this revision does "
            "not know, with a constraint (foreign key, UNIQUE, primary key, CHECK or generated) "
            "that its table rebuild cannot carry over; refusing before any change",
            hint="move the constraint out of the table (e.g. a unique index instead of UNIQUE), "
            "or drop the column after a backup, then run again",
        )


def _extra_indexes(bind: Connection, table: sa.Table, drops: Collection[str]) -> tuple[tuple[str, str], ...]:
    ours = {index.name for index in table.indexes} | set(drops)
    rows = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL ORDER BY rowid", (table.name,)
    ).all()
    kept = tuple((name, sql) for name, sql in rows if name not in ours)
    dropped = set(drops)
    for name, _ in kept:
        used = {row[2] for row in bind.exec_driver_sql(f'PRAGMA index_info("{name}")')}
        if used & dropped:
            raise MigrationError(
                f"index {name} on {table.name} uses column(s) {', '.join(sorted(used & dropped))} "
                "that this revision drops; refusing before any change",
                hint=f"drop index {name} yourself (after a backup) if you mean to go on",
            )
    return kept


def _dependents(bind: Connection, name: str) -> tuple[tuple[str, str, str], ...]:
    """Triggers on the table, and triggers and views whose SQL names it, in creation order."""
    rows = bind.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('trigger', 'view') "
        "AND sql IS NOT NULL ORDER BY rowid"
    ).all()
    word = re.compile(rf"(?<![\w$])[\"`\[]?{re.escape(name)}[\"`\]]?(?![\w$])", re.IGNORECASE)
    return tuple(
        (kind, obj, sql) for kind, obj, on, sql in rows if on == name or word.search(sql)
    )


def drop_dependents(bind: Connection, kept: Kept) -> None:
    """Drop the triggers and views that name the table (they are replayed by :func:`restore`)."""
    for kind, name, _ in reversed(kept.dependents):
        bind.exec_driver_sql(f'DROP {kind.upper()} IF EXISTS "{name}"')


def restore(bind: Connection, table: str, kept: Kept) -> None:
    """Recreate the kept indexes, triggers and views on the rebuilt table, from their SQL."""
    for kind, name, sql in [*(("index", n, s) for n, s in kept.indexes), *kept.dependents]:
        try:
            bind.exec_driver_sql(sql)
            if kind == "view":  # SQLite compiles a view only when it is read
                bind.exec_driver_sql(f'SELECT * FROM "{name}" LIMIT 0')
        except sa.exc.DBAPIError as exc:
            detail = str(exc.orig or exc).strip().splitlines()[0]
            raise MigrationError(
                f"{kind} {name} (on or naming {table}) does not fit the rebuilt table: {detail}; "
                "the revision was rolled back",
                hint=f"drop or rewrite {kind} {name} (after a backup), then run again",
            ) from None
