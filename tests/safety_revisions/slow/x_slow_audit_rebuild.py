"""test only: a long audit_events rebuild that a test kills with SIGKILL half-way

The table is rebuilt with an extra column and every row is rewritten; then, when
``LLM_PROXY_TEST_SLOW_MARKER`` names a file, the revision writes it and sleeps inside its
transaction so the test can kill the process mid-revision.

Revision ID: x_slow
Revises: (the real head)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.revision_helpers import is_sqlite

revision = "x_slow"
down_revision = revisions.head_revision()
branch_labels = None
depends_on = None


OUTCOME_CHECK = sa.CheckConstraint("outcome IN ('success', 'failure', 'denied', 'error')")


def upgrade() -> None:
    recreate = "always" if is_sqlite() else "auto"
    with op.batch_alter_table("audit_events", recreate=recreate, table_args=(OUTCOME_CHECK,)) as batch:
        batch.add_column(sa.Column("rebuilt", sa.Text))
    op.execute("UPDATE audit_events SET rebuilt = 'yes'")
    marker = os.environ.get("LLM_PROXY_TEST_SLOW_MARKER")
    if marker:
        Path(marker).write_text("in the middle of x_slow\n")
        time.sleep(float(os.environ.get("LLM_PROXY_TEST_SLOW_SECONDS", "60")))


def downgrade() -> None:
    recreate = "always" if is_sqlite() else "auto"
    with op.batch_alter_table("audit_events", recreate=recreate) as batch:
        batch.drop_column("rebuilt")
