"""token cache hits: tokens.cache_hit_count INTEGER NOT NULL DEFAULT 0 (goose version 3)

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-11
"""

from __future__ import annotations

import sqlalchemy as sa

from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.revision_helpers import (
    add_column_if_missing,
    drop_column_if_present,
    is_postgresql,
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# PostgreSQL: a catalog change committed on its own (the ACCESS EXCLUSIVE lock on ``tokens``
# lasts one statement, waiting at most pg_online's short lock wait per attempt); goose file 3
# says the same ``IF NOT EXISTS``, so a stop before the version is recorded harms neither
# release.
PG_ADD_COLUMN = "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS cache_hit_count INTEGER DEFAULT 0 NOT NULL"


def upgrade() -> None:
    if is_postgresql() and not pg_online.in_external_transaction():
        with pg_online.online_block():
            pg_online.run(PG_ADD_COLUMN, "add tokens.cache_hit_count", exclusive=True)
            pg_online.boundary("tokens.cache_hit_count added")
        return
    if is_postgresql():  # inside a caller's transaction: the same statement and lock wait
        pg_online.run(PG_ADD_COLUMN, "add tokens.cache_hit_count", exclusive=True)
        return
    add_column_if_missing(
        "tokens",
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    drop_column_if_present("tokens", "cache_hit_count")


def postgresql_started(connection: sa.engine.Connection) -> list[str]:
    """0004's column already committed at 0003 (a PostgreSQL run stopped before the version)."""
    names = {column["name"] for column in sa.inspect(connection).get_columns("tokens")}
    return ["tokens.cache_hit_count added"] if "cache_hit_count" in names else []
