"""token cache hits: tokens.cache_hit_count INTEGER NOT NULL DEFAULT 0 (goose version 3)

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-11
"""

from __future__ import annotations

import sqlalchemy as sa

from llm_proxy_db.migration.revision_helpers import add_column_if_missing, drop_column_if_present

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_column_if_missing(
        "tokens",
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    drop_column_if_present("tokens", "cache_hit_count")
