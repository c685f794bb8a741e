"""provider-agnostic api key: projects.openai_api_key renamed to api_key (goose version 5)

Like goose version 5, the rename happens only when ``openai_api_key`` exists and
``api_key`` does not: a later service release created databases that said ``api_key``
from the start.

Revision ID: 0006
Revises: 0005
Create Date: 2025-11-20
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import alter
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.revision_helpers import has_column, is_mysql, is_offline, is_postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if is_offline() or (has_column("projects", "openai_api_key") and not has_column("projects", "api_key")):
        _rename("openai_api_key", "api_key")


def downgrade() -> None:
    # One transaction with the version update: a stop part-way leaves 0006 whole (an upgrade
    # that found the column renamed back would skip it and leave the wrong name at head).
    if is_offline() or (has_column("projects", "api_key") and not has_column("projects", "openai_api_key")):
        _rename("api_key", "openai_api_key", commit_alone=False)


def _rename(old: str, new: str, *, commit_alone: bool = True) -> None:
    if is_mysql():  # MySQL 8 / MariaDB 10.5+: a catalog change, the service keeps writing
        alter("projects", f"RENAME COLUMN {old} TO {new}", "INSTANT")
        return
    statement = f"ALTER TABLE projects RENAME COLUMN {old} TO {new}"
    if is_postgresql() and not is_offline():
        # Each attempt waits at most pg_online's short lock wait for ACCESS EXCLUSIVE on
        # ``projects``, retried.  The upgrade commits the rename on its own (the lock lasts one
        # catalog change; goose file 5 renames only when the old name is there, so a stop
        # before the version is recorded is harmless).  Offline scripts keep the rename in the
        # revision's transaction: rerun after a failure, a committed plain RENAME would fail.
        if commit_alone and not pg_online.in_external_transaction():
            with pg_online.online_block():
                pg_online.run(statement, f"rename projects.{old}", exclusive=True)
                pg_online.boundary(f"projects.{old} renamed to {new}")
        else:
            pg_online.run(statement, f"rename projects.{old}", exclusive=True)
        return
    op.alter_column("projects", old, new_column_name=new, existing_type=sa.Text, existing_nullable=False)
