"""The service's goose version table: read its version, and retire it after adoption.

Goose keeps ``goose_db_version(id, version_id, is_applied, tstamp)``; the current version is
the highest ``version_id`` with ``is_applied`` true (row 0 is goose's seed row).

After this tool adopts a database, goose must never migrate it again, or two tools would
change one schema.  :func:`retire` therefore marks *every* goose version this project
knows (1..6) as applied, so any goose runner, of any service release, finds nothing to do.
We do not rename or drop the table: a goose runner that finds no version table creates a
fresh one and replays version 1 onwards against tables that already exist, which fails at
best and duplicates columns or constraints at worst.  The marker rows are ordinary goose
rows; the adoption record (:mod:`llm_proxy_db.adoption_record`) keeps the version goose
really had.  From then on ``alembic_version`` is the one source of truth.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

GOOSE_TABLE = "goose_db_version"
LATEST_GOOSE_VERSION = 6


def has_goose_table(connection: Connection) -> bool:
    """Whether the service's goose runner ever managed this database."""
    return bool(sa.inspect(connection).has_table(GOOSE_TABLE))


def goose_version(connection: Connection) -> int | None:
    """The goose version recorded in the database, or None when there is no goose table."""
    if not has_goose_table(connection):
        return None
    query = sa.text(f"SELECT max(version_id) FROM {GOOSE_TABLE} WHERE is_applied = :applied")
    value = connection.execute(query, {"applied": True}).scalar()
    return int(value or 0)


def retire(connection: Connection, up_to: int = LATEST_GOOSE_VERSION) -> list[int]:
    """Mark goose versions up to ``up_to`` as applied (inside the caller's transaction).

    Returns the versions marked; [] when goose already had them all or there is no table.
    """
    current = goose_version(connection)
    if current is None:
        return []
    versions = list(range(current + 1, up_to + 1))
    insert = sa.text(
        f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied, tstamp) "
        "VALUES (:version, :applied, CURRENT_TIMESTAMP)"
    )
    for version in versions:
        connection.execute(insert, {"version": version, "applied": True})
    return versions
