"""audit outcome values: the outcome CHECK widened to success, failure, denied, error (goose version 6)

PostgreSQL replaces ``audit_events_outcome_check``.  SQLite cannot alter a CHECK in place
through DDL, so the table is rebuilt with the new constraint and its 7 indexes.  The
downgrade refuses while any event uses an outcome the old CHECK forbids: those rows would
otherwise be lost.

Revision ID: 0007
Revises: 0006
Create Date: 2025-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.revision_helpers import is_sqlite, rebuild_sqlite_table, refuse_if_rows

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_CHECK = "outcome IN ('success', 'failure', 'denied', 'error')"
OLD_CHECK = "outcome IN ('success', 'failure')"
INDEXES = {
    "idx_audit_timestamp": ["timestamp"],
    "idx_audit_action": ["action"],
    "idx_audit_project_id": ["project_id"],
    "idx_audit_client_ip": ["client_ip"],
    "idx_audit_request_id": ["request_id"],
    "idx_audit_outcome": ["outcome"],
    "idx_audit_ip_action": ["client_ip", "action"],
}


def upgrade() -> None:
    _replace_check(NEW_CHECK)


def downgrade() -> None:
    refuse_if_rows(
        "audit_events",
        "outcome NOT IN ('success', 'failure')",
        "have an outcome (denied, error) that revision 0006 does not allow",
    )
    _replace_check(OLD_CHECK)


def _replace_check(check: str) -> None:
    if is_sqlite():
        rebuild_sqlite_table(_sqlite_audit_events(check))
        return
    op.drop_constraint("audit_events_outcome_check", "audit_events", type_="check")
    op.create_check_constraint("audit_events_outcome_check", "audit_events", check)


def _sqlite_audit_events(check: str) -> sa.Table:
    optional_text = ("project_id", "request_id", "correlation_id", "client_ip", "method", "path", "user_agent")
    table = sa.Table(
        "audit_events",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True, nullable=True),  # as the service's DDL
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        *(sa.Column(name, sa.Text) for name in optional_text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.CheckConstraint(check),
    )
    for name, columns in INDEXES.items():
        sa.Index(name, *(table.c[column] for column in columns))
    return table
