"""The service's goose version table, kept in step with ``alembic_version``.

Goose keeps ``goose_db_version(id, version_id, is_applied, tstamp)``; the current version is
the highest ``version_id`` with ``is_applied`` true (row 0 is goose's seed row).  The service
runs goose at every start on the dialects listed in :data:`GOOSE_VERSIONS` and applies every
goose file above the recorded version.  A schema ahead of that table is broken for the
service (its file 4 fails on a database that has ``tokens.id``); a schema behind it would be
served with columns missing.

So after every revision this tool applies or reverts (and every stamp), :func:`sync` makes
the table record exactly the goose versions whose effect the schema has: 1..N, where N is the
revision's entry in :data:`GOOSE_VERSIONS` (0 for a revision below the first goose version).
It runs inside the revision's own transaction (``on_version_apply``, see
:mod:`llm_proxy_db.migration.environment`), after ``alembic_version`` was written, so both tables change
together or not at all.  The table is created with goose's own DDL (and its seed row 0) when a
revision first needs a goose version; rows of versions whose effect is gone are deleted, and
below the first goose version a table left with only its seed row is dropped (goose would
start from version 1 with or without it).
On SQLite the current service runs no goose, so nothing is written there (a goose table left
by the 2025-12 releases stays as it was).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects import all_dialects, dialect_for
from llm_proxy_db.dialects.base import GOOSE_TABLE

LATEST_GOOSE_VERSION = 6


def _goose_data() -> tuple[dict[str, Mapping[str, int]], dict[str, str]]:
    """Each dialect module's goose bookkeeping, keyed by SQLAlchemy's dialect name."""
    versions: dict[str, Mapping[str, int]] = {}
    ddl: dict[str, str] = {}
    for dialect in all_dialects():
        if dialect.GOOSE_VERSIONS is not None and dialect.GOOSE_TABLE_DDL is not None:
            versions[dialect.SQLALCHEMY_NAME] = dialect.GOOSE_VERSIONS
            ddl[dialect.SQLALCHEMY_NAME] = dialect.GOOSE_TABLE_DDL
    return versions, ddl


# Per dialect (from the dialect modules): our revision -> the highest goose version whose
# effect that revision's schema has (versions 1..N), and goose's own CREATE TABLE (with its
# seed row 0 inserted right after).  A dialect without an entry is one where the service runs
# no goose.
GOOSE_VERSIONS, GOOSE_TABLE_DDL = _goose_data()


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


def runs_goose(dialect: str) -> bool:
    """Whether the service runs goose (and so reads ``goose_db_version``) on ``dialect``."""
    return dialect in GOOSE_VERSIONS


def goose_version_at(dialect: str, revision: str | None) -> int | None:
    """The goose version the schema of ``revision`` equals (None = base), or None when
    the service runs no goose on ``dialect`` or the revision is not ours."""
    mapping = GOOSE_VERSIONS.get(dialect)
    if mapping is None:
        return None
    if revision is None:
        return 0
    return mapping.get(revision)


def recorded_versions(connection: Connection) -> list[int]:
    """The applied goose versions above the seed row, in the order goose recorded them."""
    if not has_goose_table(connection):
        return []
    query = sa.text(
        f"SELECT version_id FROM {GOOSE_TABLE} WHERE is_applied = :applied AND version_id > 0 "
        "ORDER BY id"
    )
    return [int(row[0]) for row in connection.execute(query, {"applied": True})]


def sync(connection: Connection, revision: str | None) -> list[int] | None:
    """Make ``goose_db_version`` record exactly the goose versions of ``revision`` (None = base).

    Runs in the caller's transaction.  Returns the versions now recorded, or None when nothing
    is kept in step (a dialect without goose, or a revision that is not ours).
    """
    dialect = connection.dialect.name
    wanted = goose_version_at(dialect, revision)
    if wanted is None:
        return None
    if not has_goose_table(connection):
        if wanted == 0:
            return []
        _create_table(connection, dialect)
    _trim(connection, wanted)
    if wanted == 0:
        _drop_if_only_seeded(connection)
        return []
    _fill(connection, wanted)
    return list(range(1, wanted + 1))


def _drop_if_only_seeded(connection: Connection) -> None:
    """Below the first goose version a table holding only goose's seed row says nothing a
    missing table would not (goose creates it and starts from version 1 either way), so it
    goes: a downgrade leaves no trace of the table an upgrade created."""
    if not recorded_versions(connection) and not _rolled_back_rows(connection):
        connection.exec_driver_sql(f"DROP TABLE {GOOSE_TABLE}")


def _rolled_back_rows(connection: Connection) -> bool:
    query = sa.text(f"SELECT count(*) FROM {GOOSE_TABLE} WHERE version_id > 0")
    return bool(connection.execute(query).scalar())


def _create_table(connection: Connection, dialect: str) -> None:
    connection.exec_driver_sql(GOOSE_TABLE_DDL[dialect])
    _insert(connection, 0)


def _trim(connection: Connection, wanted: int) -> None:
    """Delete rows of versions above ``wanted`` and goose's "not applied" rows (rolled back)."""
    connection.execute(
        sa.text(
            f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0 "
            "AND (version_id > :wanted OR is_applied = :not_applied)"
        ),
        {"wanted": wanted, "not_applied": False},
    )


def _fill(connection: Connection, wanted: int) -> None:
    """Record 1..``wanted``, in ascending order of row id.

    Older goose runners take the version of the *latest row* as current, so the rows must
    be in version order; a table with gaps or out-of-order rows is rewritten.
    """
    have = recorded_versions(connection)
    if have != list(range(1, len(have) + 1)):
        connection.execute(sa.text(f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0"))
        have = []
    for version in range(len(have) + 1, wanted + 1):
        _insert(connection, version)


def _insert(connection: Connection, version: int) -> None:
    connection.execute(
        sa.text(f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) VALUES (:version, :applied)"),
        {"version": version, "applied": True},
    )


def offline_sql(dialect: str, revision: str | None) -> list[str]:
    """What :func:`sync` does, as statements that need no reading (for ``--sql`` scripts).

    Idempotent (each dialect module's ``goose_offline_sql``): they create the table (and seed
    row) only when a goose version is needed, trim what is above, and add the missing
    versions in order.
    """
    wanted = goose_version_at(dialect, revision)
    if wanted is None:
        return []
    return dialect_for(dialect).goose_offline_sql(wanted)


def on_version_apply(ctx: Any, step: Any, heads: Collection[str], run_args: Any) -> None:
    """Alembic ``on_version_apply`` callback: keep goose in step, in the revision's transaction.

    ``heads`` is what ``alembic_version`` holds after the step (empty at base).  Offline
    (``--sql``) runs write the same as idempotent statements into the script.
    """
    if len(heads) > 1:
        return
    revision = next(iter(heads), None)
    if ctx.as_sql:
        for statement in offline_sql(ctx.dialect.name, revision):
            ctx.execute(statement)
        return
    sync(ctx.connection, revision)
