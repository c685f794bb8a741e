"""What a SQLite file holds under a name: tables, indexes and views share one namespace (triggers
have their own: a trigger named ``tokens`` does not stop ``CREATE TABLE tokens``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def relations_named(connection: Connection, names: tuple[str, ...]) -> dict[str, str]:
    """``name -> kind`` for each of ``names`` that exists as something other than a plain
    table: a view, an index, or a virtual table (a trigger's name clashes with no table)."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT name, CASE WHEN type = 'table' THEN 'virtual table' ELSE type END FROM sqlite_master "
        "WHERE name IN :names AND (type IN ('view', 'index') "
        "OR (type = 'table' AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%'))"
    ).bindparams(sa.bindparam("names", expanding=True))
    return {str(name): str(kind) for name, kind in connection.execute(query, {"names": list(names)})}
