"""initial schema: projects and tokens (state L0, shipped 2025-05)

Revision ID: 0001
Revises:
Create Date: 2025-05-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import Step, has_index, has_table, run_steps
from llm_proxy_db.migration.revision_helpers import (
    MYSQL_TABLE,
    is_mysql,
    is_offline,
    is_sqlite,
    key_type,
    now_default,
    text_type,
    timestamp_type,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# On SQLite, primary-key columns are left nullable as in the service's DDL
# (``id TEXT PRIMARY KEY`` never said NOT NULL, and SQLite does not imply it).


# MySQL (the service's MySQL types: VARCHAR(191) keys, DATETIME(6), InnoDB/utf8mb4) runs
# each statement as a resumable step: DDL commits one statement at a time there.
TOKEN_INDEXES = {
    "idx_tokens_project_id": ["project_id"],
    "idx_tokens_expires_at": ["expires_at"],
    "idx_tokens_is_active": ["is_active"],
}


def _name(name: str) -> str | None:
    """PostgreSQL's own names for inline constraints; SQLite's and MySQL's are unnamed."""
    return None if is_sqlite() or is_mysql() else name


def upgrade() -> None:
    if is_mysql():
        run_steps(mysql_upgrade_steps(), None if is_offline() else op.get_bind())
        return
    _create_projects()
    op.create_index("idx_projects_name", "projects", ["name"])
    _create_tokens()
    for name, columns in TOKEN_INDEXES.items():
        op.create_index(name, "tokens", columns)


def mysql_upgrade_steps() -> list[Step]:
    """The upgrade on MySQL, one resumable statement per step."""
    return [
        Step("create table projects", lambda c: has_table(c, "projects"), _create_projects),
        _index_step("projects", "idx_projects_name", ["name"]),
        Step("create table tokens", lambda c: has_table(c, "tokens"), _create_tokens),
        *(_index_step("tokens", name, columns) for name, columns in TOKEN_INDEXES.items()),
    ]


def _index_step(table: str, name: str, columns: list[str]) -> Step:
    return Step(
        f"create index {name}", lambda c: has_index(c, table, name), lambda: op.create_index(name, table, columns)
    )


def _create_projects() -> None:
    op.create_table(
        "projects",
        sa.Column("id", key_type(), nullable=is_sqlite()),
        sa.Column("name", text_type(255), nullable=False),
        sa.Column("openai_api_key", sa.Text, nullable=False),
        sa.Column("created_at", timestamp_type(), nullable=False, server_default=now_default()),
        sa.Column("updated_at", timestamp_type(), nullable=False, server_default=now_default(on_update=True)),
        sa.PrimaryKeyConstraint("id", name=_name("projects_pkey")),
        sa.UniqueConstraint("name", name=_name("projects_name_key")),
        **MYSQL_TABLE,
    )


def _create_tokens() -> None:
    op.create_table(
        "tokens",
        sa.Column("token", key_type(), nullable=is_sqlite()),
        sa.Column("project_id", key_type(), nullable=False),
        sa.Column("expires_at", timestamp_type()),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        sa.Column("created_at", timestamp_type(), nullable=False, server_default=now_default()),
        sa.Column("last_used_at", timestamp_type()),
        sa.PrimaryKeyConstraint("token", name=_name("tokens_pkey")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], ondelete="CASCADE", name=_name("tokens_project_id_fkey")
        ),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    if is_mysql() and not is_offline():  # resumable: a rerun after a failure finishes the job
        for table in ("tokens", "projects"):
            if has_table(op.get_bind(), table):
                op.drop_table(table)
        return
    op.drop_table("tokens")
    op.drop_table("projects")
