"""audit events: the audit_events table and its 7 indexes (state L1, shipped 2025-08-13)

Revision ID: 0002
Revises: 0001
Create Date: 2025-08-13
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.revision_helpers import is_sqlite

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

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
    pg = not is_sqlite()
    optional_text = ("project_id", "request_id", "correlation_id", "client_ip", "method", "path", "user_agent")
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Text, nullable=not pg),  # SQLite: nullable, as the service's DDL
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        *(sa.Column(name, sa.Text) for name in optional_text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.PrimaryKeyConstraint("id", name="audit_events_pkey" if pg else None),
        sa.CheckConstraint(
            "outcome IN ('success', 'failure')",
            name="audit_events_outcome_check" if pg else None,
        ),
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_events", columns)


def downgrade() -> None:
    # Dropping the table drops its indexes; audit events do not exist before this revision.
    op.drop_table("audit_events")
