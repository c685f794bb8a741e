"""A record, in the database itself, of an operation that commits as it goes and has not ended.

Where every statement commits on its own (MySQL's DDL, a MySQL restore loading a dump
statement by statement), a run killed half-way leaves a database that may look whole: every
table there, part of the rows; a revision's version still recorded while its downgrade has
dropped a column.  So such an operation writes a row into ``llm_proxy_unfinished`` (created
on demand) and commits *before* its first change, and deletes it (dropping the table when it
is empty) only once its end is recorded and checked.  Any later process, on any machine, sees
the row: ``migrate status`` shows it and the commands that write or adopt refuse (or resume)
until the operation is finished or redone.

This module offers the primitives only; which operation marks what, and who refuses, is
decided above (the migration executor, the restore, the safety guard).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported when used: the fast startup read needs the name only
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

UNFINISHED_TABLE = "llm_proxy_unfinished"
DOWNGRADE = "downgrade"
RESTORE = "restore"
# Beside a RESTORE: the safety dump of what the database held before the restore (the good copy
# to go back to; carried over when a restore is redone over one that did not finish).
REPLACED = "replaced"


@functools.cache
def _table() -> sa.Table:
    import sqlalchemy as sa

    return sa.Table(
        UNFINISHED_TABLE,
        sa.MetaData(),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
    )


@dataclass(frozen=True)
class Unfinished:
    """One operation that started and did not end: ``kind`` (``downgrade``, ``restore``),
    ``subject`` (the revision being reverted, the dump being loaded), when it started."""

    kind: str
    subject: str
    started_at: dt.datetime


def mark(connection: Connection, kind: str, subject: str) -> None:
    """Record that ``kind`` of ``subject`` starts, and commit (before the operation's first change)."""
    table = _table()
    connection.commit()
    table.create(connection, checkfirst=True)
    connection.execute(table.delete().where(table.c.kind == kind))
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    connection.execute(table.insert(), {"kind": kind, "subject": subject, "started_at": moment})
    connection.commit()


def replace_all(connection: Connection, entries: list[tuple[str, str]]) -> None:
    """Make ``(kind, subject)`` of ``entries`` the only operations recorded, and commit (a
    restore's start: what the replaced database had started is gone with it)."""
    table = _table()
    connection.commit()
    table.create(connection, checkfirst=True)
    connection.execute(table.delete())
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for kind, subject in entries:
        connection.execute(table.insert(), {"kind": kind, "subject": subject, "started_at": moment})
    connection.commit()


def clear(connection: Connection, *kinds: str) -> None:
    """Forget ``kinds`` (the operation ended and was checked); the table goes when it is empty."""
    import sqlalchemy as sa

    table = _table()
    connection.commit()
    if not _exists(connection):
        return
    connection.execute(table.delete().where(table.c.kind.in_(kinds)))
    connection.commit()
    if not connection.execute(sa.select(sa.func.count()).select_from(table)).scalar():
        connection.commit()
        table.drop(connection, checkfirst=True)
    connection.commit()


def read(connection: Connection) -> list[Unfinished]:
    """Every operation recorded as started and not ended ([] without the table; never creates it)."""
    if not _exists(connection):
        return []
    import sqlalchemy as sa

    rows = connection.execute(sa.select(_table()).order_by(_table().c.started_at))
    return [Unfinished(row.kind, row.subject, row.started_at) for row in rows]


def _exists(connection: Connection) -> bool:
    import sqlalchemy as sa

    return bool(sa.inspect(connection).has_table(UNFINISHED_TABLE))
