"""Small helpers the revision scripts share, so each script says only what changed.

Revision scripts stay frozen snapshots of a shipped change: they define the tables they
rebuild themselves and never import the head schema.  What they share is mechanism:
which dialect runs, whether a column exists (to mirror the guards the service's own goose
files had), SQLite table rebuilds through Alembic's batch mode, and UUIDs made in SQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import context, op
from llm_proxy_db.errors import MigrationError

# A version-4 UUID in the canonical dashed form, computed by SQLite itself per row.
SQLITE_UUID4_SQL = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || "
    "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || "
    "lower(hex(randomblob(6)))"
)


def dialect_name() -> str:
    """``sqlite`` or ``postgresql``, online or offline."""
    return str(context.get_context().dialect.name)


def is_sqlite() -> bool:
    """True when the revision runs against SQLite."""
    return dialect_name() == "sqlite"


def is_offline() -> bool:
    """True when rendering SQL (``--sql``) instead of running it."""
    return bool(context.is_offline_mode())


def has_column(table: str, column: str) -> bool:
    """Whether ``table.column`` exists now; offline, the canonical chain is assumed (False)."""
    if is_offline():
        return False
    columns = sa.inspect(op.get_bind()).get_columns(table)
    return any(info["name"] == column for info in columns)


def add_column_if_missing(table: str, column: sa.Column) -> None:
    """``ADD COLUMN`` unless the column is already there (the goose files' ``IF NOT EXISTS``)."""
    if not has_column(table, column.name):
        op.add_column(table, column)


def rebuild_sqlite_table(table: sa.Table) -> None:
    """Rebuild a SQLite table into ``table``'s definition, copying rows column by column.

    Alembic's batch mode creates the new table, copies with ``INSERT ... SELECT``, drops the
    old one and renames; indexes defined on ``table`` are recreated.  The migration
    connection runs with foreign keys off (so dropping a parent does not cascade) and the
    environment checks ``PRAGMA foreign_key_check`` before the revision commits.
    """
    with op.batch_alter_table(table.name, copy_from=table, recreate="always"):
        pass


def refuse_if_rows(table: str, where: str, why: str) -> None:
    """Stop a downgrade that would have to drop or break rows; the revision rolls back."""
    if is_offline():
        return
    count = op.get_bind().execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar()
    if count:
        raise MigrationError(f"{count} row(s) in {table} {why}; refusing to downgrade")
