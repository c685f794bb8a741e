"""What a downgrade allowed to lose data does with rows the older schema rejects.

A downgrade that narrows a constraint (0007: the outcome CHECK back to ``success``/``failure``)
meets rows written under the wider one.  Without ``--allow-data-loss`` it refuses (exit 11,
nothing changed).  With it, the rows are **kept and folded** into what the older schema
accepts, never deleted: an audit log is evidence, and losing rows is the one thing this tool
never does.  The fold keeps the information it must drop from the constrained column in a free
text column beside it, so it can be read back.

The revision files call :func:`~llm_proxy_db.migration.revision_helpers.refuse_if_rows`; the
knowledge of how to fold lives here, outside the checksummed revision files, keyed by the
table and the condition the revision passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

ALLOW_DATA_LOSS = "allow_data_loss"  # the Alembic config attribute the executor sets


@dataclass(frozen=True)
class Fold:
    """How rows matching ``where`` in ``table`` are made acceptable to the older schema."""

    table: str
    where: str
    description: str

    def statement(self) -> sa.Update:
        """The UPDATE that folds the rows (portable: SQLAlchemy renders each dialect's concat)."""
        audit = sa.table("audit_events", sa.column("outcome", sa.String), sa.column("reason", sa.String))
        note = sa.literal("[outcome was ") + audit.c.outcome + sa.literal("] ")
        # reason first: MySQL evaluates single-table SET assignments left to right
        return (
            sa.update(audit)
            .where(sa.text(self.where))
            .ordered_values(
                (audit.c.reason, note + sa.func.coalesce(audit.c.reason, "")),
                (audit.c.outcome, "failure"),
            )
        )


OUTCOME_FOLD = Fold(
    "audit_events",
    "outcome NOT IN ('success', 'failure')",
    "recorded as outcome failure, the original outcome kept at the start of reason "
    "(\"[outcome was denied] ...\")",
)
FOLDS = {(OUTCOME_FOLD.table, OUTCOME_FOLD.where): OUTCOME_FOLD}


def fold_for(table: str, where: str) -> Fold | None:
    """The fold for the rows a revision refuses (``table``, ``where``), or None: refuse always."""
    return FOLDS.get((table, " ".join(where.split())))
