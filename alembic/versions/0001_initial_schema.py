"""initial schema: projects and tokens (state L0, shipped 2025-05)

Revision ID: 0001
Revises:
Create Date: 2025-05-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.revision_helpers import is_sqlite

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# On SQLite, primary-key columns are left nullable as in the service's DDL
# (``id TEXT PRIMARY KEY`` never said NOT NULL, and SQLite does not imply it).


def _name(name: str) -> str | None:
    """PostgreSQL's own names for inline constraints; SQLite's are unnamed."""
    return None if is_sqlite() else name


def upgrade() -> None:
    now = sa.text("CURRENT_TIMESTAMP")
    op.create_table(
        "projects",
        sa.Column("id", sa.Text, nullable=is_sqlite()),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("openai_api_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime, nullable=False, server_default=now),
        sa.PrimaryKeyConstraint("id", name=_name("projects_pkey")),
        sa.UniqueConstraint("name", name=_name("projects_name_key")),
    )
    op.create_index("idx_projects_name", "projects", ["name"])
    op.create_table(
        "tokens",
        sa.Column("token", sa.Text, nullable=is_sqlite()),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=now),
        sa.Column("last_used_at", sa.DateTime),
        sa.PrimaryKeyConstraint("token", name=_name("tokens_pkey")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], ondelete="CASCADE", name=_name("tokens_project_id_fkey")
        ),
    )
    op.create_index("idx_tokens_project_id", "tokens", ["project_id"])
    op.create_index("idx_tokens_expires_at", "tokens", ["expires_at"])
    op.create_index("idx_tokens_is_active", "tokens", ["is_active"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("projects")
