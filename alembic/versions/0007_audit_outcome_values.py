"""audit outcome values: the outcome CHECK widened to success, failure, denied, error (goose version 6)

Neither dialect copies or locks ``audit_events`` for longer than a catalog change, so the
cost of this revision does not grow with the audit log:

- SQLite rewrites the CHECK text in place (SQLite's documented procedure for changes that
  do not touch stored data; see ``set_sqlite_check_in``).  Offline (``--sql``) output cannot
  read the current table text, so it renders the equivalent table rebuild instead.
- PostgreSQL replaces ``audit_events_outcome_check`` with the wider CHECK added
  ``NOT VALID`` (a brief ACCESS EXCLUSIVE lock, no scan), commits, then runs
  ``VALIDATE CONSTRAINT`` in its own transaction, which scans under SHARE UPDATE EXCLUSIVE
  only (reads and writes continue).  Trade-off: the upgrade is two transactions.  If it stops
  between them the database holds the wider constraint, not yet validated, at revision 0006;
  the service works with it and running the upgrade again finishes the job.

The downgrade narrows the CHECK.  It first takes the table's lock (by changing the
constraint), then refuses while any event uses an outcome the old CHECK forbids: those rows
would otherwise be lost.  It stays one transaction, validating under the lock it holds, so
no row can slip in between the check and the commit.

Revision ID: 0007
Revises: 0006
Create Date: 2025-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db import pg_online
from llm_proxy_db.revision_helpers import (
    is_offline,
    is_sqlite,
    rebuild_sqlite_table,
    refuse_if_rows,
    set_sqlite_check_in,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_VALUES = ("success", "failure", "denied", "error")
OLD_VALUES = ("success", "failure")
CHECK_NAME = "audit_events_outcome_check"
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
    _replace_check(NEW_VALUES, validate_after_commit=True)


def downgrade() -> None:
    _replace_check(OLD_VALUES, validate_after_commit=False)


def _replace_check(values: tuple[str, ...], *, validate_after_commit: bool) -> None:
    if is_sqlite() and is_offline():
        rebuild_sqlite_table(_sqlite_audit_events(_check_sql(values)))
    elif is_sqlite():
        set_sqlite_check_in("audit_events", "outcome", values)
    else:
        op.drop_constraint(CHECK_NAME, "audit_events", type_="check")
        op.create_check_constraint(
            CHECK_NAME, "audit_events", _check_sql(values), postgresql_not_valid=True
        )
    if values == OLD_VALUES:
        refuse_if_rows(
            "audit_events",
            "outcome NOT IN ('success', 'failure')",
            "have an outcome (denied, error) that revision 0006 does not allow",
        )
    if not is_sqlite():
        _validate(separately=validate_after_commit)


def _validate(*, separately: bool) -> None:
    """``VALIDATE CONSTRAINT``, after committing the catalog change when ``separately``."""
    validate = f"ALTER TABLE audit_events VALIDATE CONSTRAINT {CHECK_NAME}"
    # A caller that runs the revision inside its own transaction cannot be committed for us.
    if separately and not pg_online.in_external_transaction():
        pg_online.boundary("outcome check replaced (NOT VALID)")
        # Its own transaction, with its own lock_timeout (a session setting: SET LOCAL
        # would end with the one-statement transaction of autocommit mode).
        with pg_online.online_block():
            pg_online.run(validate, "validate the outcome check", quick=False)
        pg_online.boundary("outcome check validated")
    else:
        op.execute(validate)


def _check_sql(values: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{value}'" for value in values) + ")"


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
