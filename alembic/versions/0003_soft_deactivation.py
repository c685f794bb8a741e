"""soft deactivation: projects.is_active, projects.deactivated_at, tokens.deactivated_at (state L2)

What the service's applyMigrations() did from 2025-08-14.  Columns are added only when
missing, as goose version 2 did (``ADD COLUMN IF NOT EXISTS``): a database adopted from
the goose-1 shape already has ``projects.is_active``.

PostgreSQL: each column is added in its own short transaction, under the lock limits of
:mod:`llm_proxy_db.migration.pg_online` (retried when a table is busy).  One transaction taking
``projects`` then ``tokens`` would deadlock with the service, whose token inserts lock
``tokens`` then a ``projects`` row; one table per transaction cannot.  Each statement says
``IF NOT EXISTS``, so a run stopped between them is finished by the next.

Revision ID: 0003
Revises: 0002
Create Date: 2025-08-14
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import Step, run_steps
from llm_proxy_db.dialects.mysql_ddl import has_column as mysql_has_column
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.revision_helpers import (
    add_column_if_missing,
    drop_column_if_present,
    is_mysql,
    is_offline,
    is_postgresql,
    timestamp_type,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


PG_COLUMNS = {
    "projects.is_active": "ALTER TABLE projects ADD COLUMN IF NOT EXISTS is_active BOOLEAN "
    "DEFAULT true NOT NULL",
    "projects.deactivated_at": "ALTER TABLE projects ADD COLUMN IF NOT EXISTS deactivated_at "
    "TIMESTAMP WITHOUT TIME ZONE",
    "tokens.deactivated_at": "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS deactivated_at "
    "TIMESTAMP WITHOUT TIME ZONE",
}


def upgrade() -> None:
    if is_postgresql() and not pg_online.in_external_transaction():
        with pg_online.online_block():
            for column, statement in PG_COLUMNS.items():
                pg_online.run(statement, f"add {column}", exclusive=True)
                pg_online.boundary(f"{column} added")
        return
    add_column_if_missing(
        "projects", sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true())
    )
    add_column_if_missing("projects", sa.Column("deactivated_at", timestamp_type()))
    add_column_if_missing("tokens", sa.Column("deactivated_at", timestamp_type()))


DROPPED = (("tokens", "deactivated_at"), ("projects", "deactivated_at"), ("projects", "is_active"))


def downgrade() -> None:
    # None of these columns is indexed or constrained, so SQLite drops them in place.
    if is_mysql():
        run_steps(mysql_downgrade_steps(), None if is_offline() else op.get_bind())
        return
    for table, column in DROPPED:
        drop_column_if_present(table, column)


def mysql_downgrade_steps() -> list[Step]:
    """The downgrade on MySQL: each drop commits by itself, so each is a step that checks
    whether it is done (a rerun skips the columns already gone; ``migrate status`` counts them)."""
    return [_drop_step(table, column) for table, column in DROPPED]


def _drop_step(table: str, column: str) -> Step:
    return Step(
        f"drop column {table}.{column}",
        lambda c: not mysql_has_column(c, table, column),
        lambda: drop_column_if_present(table, column),
    )


def postgresql_started(connection: sa.engine.Connection) -> list[str]:
    """0003's steps already committed at 0002 (a PostgreSQL run stopped between them), for
    ``migrate status`` and the downgrade's refusal.  ``projects.is_active`` alone says
    nothing: the goose-1 shape, stamped 0002, has it."""
    inspector = sa.inspect(connection)
    return [
        f"{table}.deactivated_at added"
        for table in ("projects", "tokens")
        if "deactivated_at" in {column["name"] for column in inspector.get_columns(table)}
    ]
