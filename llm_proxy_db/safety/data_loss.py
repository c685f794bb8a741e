"""What each downgrade would lose, counted before it runs: one place, as data.

A downgrade that drops a table or a column holding data, or folds information away (a
deactivated project turning active again, token ids regenerated on the way back up, audit
outcomes the old CHECK forbids), is refused unless the caller allows data loss.  The
revision files are checksummed, so the knowledge lives here: revision id -> the queries
that count what its downgrade loses.  Each query is a table plus an optional condition in
portable SQL, so every dialect (MySQL included) uses the same entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.migration.downgrade_folds import OUTCOME_FOLD


@dataclass(frozen=True)
class LossQuery:
    """Rows of ``table`` (matching ``where``, if given) whose information a downgrade loses.

    ``column`` names the column the query needs; a database without it (a forced stamp,
    an operator's change) has nothing of that kind to lose, so the query is skipped.
    """

    table: str
    what: str
    where: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class Loss:
    """What reverting one revision would lose: how many rows, and of what."""

    revision: str
    what: str
    count: int

    def describe(self) -> str:
        """One line: ``0003: 2 deactivated project(s) would become active``."""
        return f"{self.revision}: {self.count} {self.what}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"revision": self.revision, "what": self.what, "count": self.count}


LOSSES: dict[str, tuple[LossQuery, ...]] = {
    "0001": (
        LossQuery("projects", "project row(s) dropped with the projects table"),
        LossQuery("tokens", "token row(s) dropped with the tokens table"),
    ),
    "0002": (LossQuery("audit_events", "audit event(s) dropped with the audit_events table"),),
    "0003": (
        LossQuery(
            "projects", "deactivated project(s) would become active again (projects.is_active "
            "dropped)", "is_active = false", "is_active",
        ),
        LossQuery(
            "projects", "project deactivation time(s) dropped (projects.deactivated_at)",
            "deactivated_at IS NOT NULL", "deactivated_at",
        ),
        LossQuery(
            "tokens", "token deactivation time(s) dropped (tokens.deactivated_at)",
            "deactivated_at IS NOT NULL", "deactivated_at",
        ),
    ),
    "0004": (
        LossQuery(
            "tokens", "token cache-hit count(s) dropped (tokens.cache_hit_count)",
            "cache_hit_count <> 0", "cache_hit_count",
        ),
    ),
    "0005": (
        LossQuery(
            "tokens", "token id(s) dropped (tokens.id; new ids would be generated on the way "
            "back up, so ids handed out or kept in audit_events.token_id no longer match)",
            None, "id",
        ),
    ),
    "0006": (),  # a rename: nothing is lost
    "0007": (
        LossQuery(
            "audit_events", "audit event(s) with outcome denied/error, which the old CHECK "
            f"forbids: with --allow-data-loss each is kept, {OUTCOME_FOLD.description}",
            OUTCOME_FOLD.where, "outcome",
        ),
    ),
}


def losses(connection: Connection, reverted: Iterable[str]) -> list[Loss]:
    """Count what reverting each revision in ``reverted`` would lose (only non-zero counts).

    Runs read-only queries in the caller's transaction; the caller ends it.
    """
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    found = []
    for revision in reverted:
        for query in LOSSES.get(revision, ()):
            count = _count(connection, inspector, tables, query)
            if count:
                found.append(Loss(revision, query.what, count))
    return found


def _count(connection: Connection, inspector: sa.Inspector, tables: set[str], query: LossQuery) -> int:
    if query.table not in tables:
        return 0
    if query.column is not None:
        columns = {column["name"] for column in inspector.get_columns(query.table)}
        if query.column not in columns:
            return 0
    table = connection.dialect.identifier_preparer.quote(query.table)
    where = f" WHERE {query.where}" if query.where else ""
    return int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}{where}").scalar() or 0)
