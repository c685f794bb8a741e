"""Reading the ``alembic_version`` table; reads never create it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.errors import UnknownRevisionError

VERSION_TABLE = "alembic_version"


def has_version_table(connection: Connection) -> bool:
    """Whether the database has ever been stamped by this tool."""
    return bool(sa.inspect(connection).has_table(VERSION_TABLE))


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
