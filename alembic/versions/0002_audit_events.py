"""audit events: the audit_events table and its 7 indexes (state L1, shipped 2025-08-13)

Revision ID: 0002
Revises: 0001
Create Date: 2025-08-13
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
    text_type,
    timestamp_type,
)

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


# MySQL column sizes of the service's MySQL file 1; the CHECK is written inline on the
# column there, as the service does (MariaDB keeps it as a column constraint, MySQL 8 names
# it audit_events_chk_1).
MYSQL_LENGTHS = {
    "project_id": 191, "request_id": 191, "correlation_id": 191, "token_id": 191,
    "client_ip": 45, "method": 10, "action": 255, "actor": 255,
}
OUTCOME_CHECK = "outcome IN ('success', 'failure')"


def upgrade() -> None:
    if is_mysql():
        run_steps(mysql_upgrade_steps(), None if is_offline() else op.get_bind())
        return
    _create_table()
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_events", columns)


def mysql_upgrade_steps() -> list[Step]:
    """The upgrade on MySQL, one resumable statement per step."""
    return [
        Step("create table audit_events", lambda c: has_table(c, "audit_events"), _create_table),
        *(_index_step(name, columns) for name, columns in INDEXES.items()),
    ]


def _index_step(name: str, columns: list[str]) -> Step:
    return Step(
        f"create index {name}",
        lambda c: has_index(c, "audit_events", name),
        lambda: op.create_index(name, "audit_events", columns),
    )


def _create_table() -> None:
    pg = not is_sqlite() and not is_mysql()
    optional_text = ("project_id", "request_id", "correlation_id", "client_ip", "method", "path", "user_agent")
    op.create_table(
        "audit_events",
        sa.Column("id", key_type(), nullable=is_sqlite()),  # SQLite: nullable, as the service's DDL
        sa.Column("timestamp", timestamp_type(), nullable=False),
        sa.Column("action", _text("action"), nullable=False),
        sa.Column("actor", _text("actor"), nullable=False),
        *(sa.Column(name, _text(name)) for name in optional_text),
        _outcome_column(),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", _text("token_id")),
        sa.Column("metadata", sa.Text),
        sa.PrimaryKeyConstraint("id", name="audit_events_pkey" if pg else None),
        *([] if is_mysql() else [sa.CheckConstraint(OUTCOME_CHECK, name="audit_events_outcome_check" if pg else None)]),
        **MYSQL_TABLE,
    )


def _text(name: str) -> sa.types.TypeEngine[str]:
    return text_type(MYSQL_LENGTHS.get(name))


def _outcome_column() -> sa.Column:
    if is_mysql():
        return sa.Column("outcome", sa.String(20), sa.CheckConstraint(OUTCOME_CHECK), nullable=False)
    return sa.Column("outcome", sa.Text, nullable=False)


def downgrade() -> None:
    # Dropping the table drops its indexes; audit events do not exist before this revision.
    if is_mysql() and not is_offline() and not has_table(op.get_bind(), "audit_events"):
        return  # a rerun after the drop committed
    op.drop_table("audit_events")
