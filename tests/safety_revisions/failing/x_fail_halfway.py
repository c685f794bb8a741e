"""test only: fails half-way through a batch rebuild, after another table was rebuilt

On SQLite ``projects`` is rebuilt (create, copy, drop, rename) and then the rebuild of
``tokens`` fails while copying rows into the new table (no row satisfies the new CHECK).
On PostgreSQL the same steps are plain ALTERs; the CHECK fails on the existing rows.
Either way the whole revision must roll back: nothing of it may remain.

Revision ID: x_fail
Revises: (the real head)
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.revision_helpers import is_sqlite

revision = "x_fail"
down_revision = revisions.head_revision()
branch_labels = None
depends_on = None


def upgrade() -> None:
    recreate = "always" if is_sqlite() else "auto"
    with op.batch_alter_table("projects", recreate=recreate) as batch:
        batch.add_column(sa.Column("doomed", sa.Text))
    op.execute("UPDATE projects SET doomed = 'half-way'")
    with op.batch_alter_table("tokens", recreate=recreate) as batch:
        batch.create_check_constraint("never_true", "request_count < 0")


def downgrade() -> None:
    pass
