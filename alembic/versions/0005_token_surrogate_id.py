"""token surrogate id: tokens.id becomes the primary key; token stays UNIQUE (goose version 4)

PostgreSQL: ``id UUID DEFAULT gen_random_uuid()``, filled for existing rows by the column
default, primary key ``tokens_pkey`` moved from ``token`` to ``id``, ``tokens_token_unique``
and ``idx_tokens_token`` added.  SQLite cannot move a primary key in place: the table is
rebuilt with ``id`` TEXT, filled during the one copy with dashed UUID v4 strings computed
in SQL (offline ``--sql`` output adds and fills the column, then rebuilds).

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-11
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import Step, has_column, has_index, is_nullable, primary_key, run_steps
from llm_proxy_db.revision_helpers import (
    SQLITE_UUID4_SQL,
    copy_sqlite_table,
    is_mysql,
    is_offline,
    is_sqlite,
    rebuild_sqlite_table,
)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if is_sqlite() and is_offline():
        op.add_column("tokens", sa.Column("id", sa.Text))
        op.execute(f"UPDATE tokens SET id = {SQLITE_UUID4_SQL}")
        rebuild_sqlite_table(_sqlite_tokens(with_id=True))
        return
    if is_sqlite():
        copy_sqlite_table(_sqlite_tokens(with_id=True), computed={"id": SQLITE_UUID4_SQL})
        return
    if is_mysql():
        run_steps(mysql_upgrade_steps(), None if is_offline() else op.get_bind())
        return
    op.add_column(
        "tokens",
        sa.Column("id", postgresql.UUID(as_uuid=False), server_default=sa.text("gen_random_uuid()")),
    )
    op.alter_column("tokens", "id", nullable=False)
    op.drop_constraint(_pg_primary_key_name(), "tokens", type_="primary")
    op.create_primary_key("tokens_pkey", "tokens", ["id"])
    op.create_unique_constraint("tokens_token_unique", "tokens", ["token"])
    op.create_index("idx_tokens_token", "tokens", ["token"])


def downgrade() -> None:
    if is_sqlite():
        rebuild_sqlite_table(_sqlite_tokens(with_id=False))
        return
    if is_mysql():
        run_steps(_mysql_downgrade_steps(), None if is_offline() else op.get_bind())
        return
    op.drop_index("idx_tokens_token", table_name="tokens")
    op.drop_constraint("tokens_token_unique", "tokens", type_="unique")
    op.drop_constraint(_pg_primary_key_name(), "tokens", type_="primary")
    op.create_primary_key("tokens_pkey", "tokens", ["token"])
    op.drop_column("tokens", "id")


def mysql_upgrade_steps() -> list[Step]:
    """MySQL, as the service's MySQL file 4 (``CHAR(36)`` filled with ``UUID()``), resumable.

    ``token`` gets its UNIQUE constraint before it stops being the primary key, so it is
    never without one; the key moves in one statement.
    """
    return [
        Step(
            "add column tokens.id CHAR(36)",
            lambda c: has_column(c, "tokens", "id"),
            lambda: op.add_column("tokens", sa.Column("id", sa.CHAR(36), nullable=True)),
        ),
        Step(
            "fill tokens.id with UUID() and make it NOT NULL",
            lambda c: has_column(c, "tokens", "id") and not is_nullable(c, "tokens", "id"),
            _fill_and_require_id,
        ),
        Step(
            "add constraint tokens_token_unique UNIQUE (token)",
            lambda c: has_index(c, "tokens", "tokens_token_unique"),
            lambda: op.create_unique_constraint("tokens_token_unique", "tokens", ["token"]),
        ),
        Step(
            "move the primary key from token to id",
            lambda c: primary_key(c, "tokens") == ["id"],
            lambda: op.execute("ALTER TABLE tokens DROP PRIMARY KEY, ADD PRIMARY KEY (id)"),
        ),
    ]


def _fill_and_require_id() -> None:
    op.execute("UPDATE tokens SET id = UUID() WHERE id IS NULL")
    op.alter_column("tokens", "id", existing_type=sa.CHAR(36), nullable=False)


def _mysql_downgrade_steps() -> list[Step]:
    return [
        Step(
            "move the primary key back from id to token",
            lambda c: primary_key(c, "tokens") == ["token"],
            lambda: op.execute("ALTER TABLE tokens DROP PRIMARY KEY, ADD PRIMARY KEY (token)"),
        ),
        Step(
            "drop constraint tokens_token_unique",
            lambda c: not has_index(c, "tokens", "tokens_token_unique"),
            lambda: op.drop_constraint("tokens_token_unique", "tokens", type_="unique"),
        ),
        Step(
            "drop column tokens.id",
            lambda c: not has_column(c, "tokens", "id"),
            lambda: op.drop_column("tokens", "id"),
        ),
    ]


def _pg_primary_key_name() -> str:
    """The live primary key's name (databases created elsewhere may not call it tokens_pkey)."""
    if is_offline():
        return "tokens_pkey"
    name = sa.inspect(op.get_bind()).get_pk_constraint("tokens").get("name")
    return name or "tokens_pkey"


def _sqlite_tokens(*, with_id: bool) -> sa.Table:
    """The SQLite tokens table after (``with_id``) or before this revision."""
    now = sa.text("CURRENT_TIMESTAMP")
    # Primary keys stay nullable on SQLite, as in the service's DDL.
    id_columns = [sa.Column("id", sa.Text, primary_key=True, nullable=True)] if with_id else []
    table = sa.Table(
        "tokens",
        sa.MetaData(),
        *id_columns,
        sa.Column("token", sa.Text, nullable=False, unique=True)
        if with_id
        else sa.Column("token", sa.Text, primary_key=True, nullable=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("deactivated_at", sa.DateTime),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=now),
        sa.Column("last_used_at", sa.DateTime),
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
    )
    if with_id:
        sa.Index("idx_tokens_token", table.c.token)
    sa.Index("idx_tokens_project_id", table.c.project_id)
    sa.Index("idx_tokens_expires_at", table.c.expires_at)
    sa.Index("idx_tokens_is_active", table.c.is_active)
    return table
