"""Reading the ``alembic_version`` table; reads never create it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.base import ADOPTION_TABLE, GOOSE_TABLE, RUN_LOG_TABLE
from llm_proxy_db.errors import SchemaMismatchError, UnknownRevisionError

VERSION_TABLE = "alembic_version"
# The tables a run reads or creates besides the service's own: each name must be a plain table
# or nothing (a view, a sequence or a PostgreSQL composite type under it breaks the run).
BOOKKEEPING_TABLES = (VERSION_TABLE, GOOSE_TABLE, RUN_LOG_TABLE, ADOPTION_TABLE)
_KEEPERS = {
    VERSION_TABLE: "this tool records the database's revision in",
    GOOSE_TABLE: "the service's goose runner records its versions in",
    RUN_LOG_TABLE: "this tool logs its runs in",
    ADOPTION_TABLE: "this tool records adoptions in",
}


def has_version_table(connection: Connection) -> bool:
    """Whether the database has ever been stamped by this tool.  Refuses (exit 6) when one of
    the bookkeeping tables' names is taken by an object of another kind."""
    refuse_misnamed_bookkeeping(connection)
    return bool(sa.inspect(connection).has_table(VERSION_TABLE))


def refuse_misnamed_bookkeeping(connection: Connection) -> None:
    """Raise :class:`SchemaMismatchError` when a view, sequence, type, index, ... carries the
    name of a table this tool or goose keeps its records in: reading it or creating the table
    would fail half-way through a run (issue 21: a composite type ``goose_db_version`` let
    0001-0002 run, then 0003 failed part-way)."""
    found = dialect_for(connection).relations_named(connection, BOOKKEEPING_TABLES)
    if not found:
        return
    name, kind = sorted(found.items())[0]
    raise SchemaMismatchError(
        f"{name} is a {kind}, not a table: the name of the table {_KEEPERS[name]}; nothing was changed",
        differences=tuple(f"{other} is a {what}, not a table" for other, what in sorted(found.items())),
        hint=f"the database is not usable by llm-proxy while that name is taken: rename or drop the {kind} "
        f"{name} (it is neither the service's nor this tool's), then rerun",
    )


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the database, or None (no table, or no row: base)."""
    if not has_version_table(connection):
        return None
    rows = connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars().all()
    if len(rows) > 1:
        raise UnknownRevisionError(
            f"the database records several revisions at once ({', '.join(sorted(rows))})",
            hint="this tool only ever writes one; repair alembic_version by hand",
        )
    return rows[0] if rows else None
