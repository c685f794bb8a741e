"""Every object of a MySQL/MariaDB database, of every kind (is a database empty?).

Tables and views (``information_schema.TABLES``: base tables, views, MariaDB's sequences and
system-versioned tables), stored routines (functions, procedures) and events.  Triggers
belong to a table, so a database holding one holds its table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SCHEMA_OBJECTS_SQL = (
    "SELECT LOWER(table_type), table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
    "UNION ALL SELECT LOWER(routine_type), routine_name FROM information_schema.routines "
    "WHERE routine_schema = DATABASE() "
    "UNION ALL SELECT 'event', event_name FROM information_schema.events WHERE event_schema = DATABASE() "
    "ORDER BY 1, 2"
)


def schema_objects(connection: Connection) -> list[str]:
    """``kind name`` of every object in the connection's database, sorted; [] when empty."""
    return [f"{kind} {name}" for kind, name in connection.exec_driver_sql(SCHEMA_OBJECTS_SQL)]


KINDS = {"VIEW": "view", "SEQUENCE": "sequence", "SYSTEM VERSIONED": "system-versioned table"}
# relations_named's question as the bare PyMySQL read asks it (connection.read_tables).
RELATIONS_NAMED_SQL = (
    "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE() "
    "AND table_name IN ({names}) AND table_type NOT IN ('BASE TABLE', 'TEMPORARY')"
)


def relations_named(connection: Connection, names: tuple[str, ...]) -> dict[str, str]:
    """``name -> kind`` for each of ``names`` that exists in the database as something other
    than a plain table (a view; on MariaDB a sequence or a system-versioned table)."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name IN :names AND table_type NOT IN ('BASE TABLE', 'TEMPORARY')"
    ).bindparams(sa.bindparam("names", expanding=True))
    rows = connection.execute(query, {"names": list(names)}).all()
    return {str(name): KINDS.get(str(kind).upper(), str(kind).lower()) for name, kind in rows}
