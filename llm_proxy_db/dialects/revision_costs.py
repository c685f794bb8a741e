"""What each revision's upgrade locks, what it rewrites, and how long it is expected to take,
per dialect, as data (``migrate up --dry-run`` prints it; the revision files say how).

The rates are the figures of ``bench/`` on the project's 2-core machine (docs/performance.md):
SQLite rebuilds ``tokens`` at about 17,000 rows/s (1M tokens in 58 s), PostgreSQL's online
backfill of 0005 runs at about 55,000 rows/s (1M in 18-20 s), MySQL's batched fill and
in-place rebuild at about 25,000 rows/s.  They are estimates for a plan, not promises: a
loaded server, slower disks or wider rows change them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

CATALOG_SECONDS = 0.05  # a catalog-only change, lock wait not counted


@dataclass(frozen=True)
class RevisionCost:
    """One revision's upgrade on one dialect: the locks it takes (in words), the table whose
    rows it rewrites or scans (None: catalog changes only), and the measured rate."""

    locks: str
    table: str | None = None
    rows_per_second: float = 0.0
    work: str = "rewrites"  # or "scans": a validation that reads every row, writing none

    def expected_seconds(self, rows: int) -> float:
        """The expected duration for ``rows`` rows of :attr:`table`."""
        if self.table is None or not self.rows_per_second:
            return CATALOG_SECONDS
        return CATALOG_SECONDS + rows / self.rows_per_second


_SQLITE_LOCK = (
    "the database's write lock (BEGIN IMMEDIATE) for the whole revision: the service's writes "
    "wait (busy timeout), its reads go on"
)
_PG_SHORT = "ACCESS EXCLUSIVE on {} for one catalog change at a time (each wait at most 100 ms, retried)"

SQLITE = {
    "0001": RevisionCost(_SQLITE_LOCK + "; creates projects, tokens"),
    "0002": RevisionCost(_SQLITE_LOCK + "; creates audit_events and its indexes"),
    "0003": RevisionCost(_SQLITE_LOCK + "; ADD COLUMN (catalog only)"),
    "0004": RevisionCost(_SQLITE_LOCK + "; ADD COLUMN (catalog only)"),
    "0005": RevisionCost(_SQLITE_LOCK + "; tokens rebuilt (copied row by row)", "tokens", 17_000),
    "0006": RevisionCost(_SQLITE_LOCK + "; RENAME COLUMN (catalog only)"),
    "0007": RevisionCost(_SQLITE_LOCK + "; the CHECK text rewritten in place (catalog only)"),
}
POSTGRESQL = {
    "0001": RevisionCost("ACCESS EXCLUSIVE on the new tables only (created)"),
    "0002": RevisionCost("ACCESS EXCLUSIVE on the new audit_events only (created)"),
    "0003": RevisionCost(_PG_SHORT.format("projects, then tokens (one table per transaction)")),
    "0004": RevisionCost(_PG_SHORT.format("tokens") + "; the column's constant default needs no rewrite"),
    "0005": RevisionCost(
        _PG_SHORT.format("tokens") + "; the backfill updates page ranges of about 40 ms each (row "
        "locks only); indexes built CONCURRENTLY and a validation under SHARE UPDATE EXCLUSIVE "
        "(reads and writes go on)",
        "tokens", 55_000,
    ),
    "0006": RevisionCost(_PG_SHORT.format("projects") + " (a rename)"),
    "0007": RevisionCost(
        _PG_SHORT.format("audit_events") + "; VALIDATE CONSTRAINT under SHARE UPDATE EXCLUSIVE "
        "(reads and writes go on)",
        "audit_events", 400_000, "scans",
    ),
}
MYSQL = {
    "0001": RevisionCost("metadata locks on the new tables only (created)"),
    "0002": RevisionCost("metadata locks on the new audit_events only (created)"),
    "0003": RevisionCost("a brief metadata lock per table: ALGORITHM=INSTANT column additions"),
    "0004": RevisionCost("a brief metadata lock on tokens: ALGORITHM=INSTANT column addition"),
    "0005": RevisionCost(
        "a brief metadata lock on tokens per step; batched fill (row locks only); the primary key "
        "moved by one ALGORITHM=INPLACE, LOCK=NONE rebuild (reads and writes go on)",
        "tokens", 25_000,
    ),
    "0006": RevisionCost("a brief metadata lock on projects: a column rename (catalog only)"),
    "0007": RevisionCost(
        "audit_events copied to validate the new CHECK (ALGORITHM=COPY, LOCK=SHARED): reads go "
        "on, the service's audit writes WAIT for the whole copy",
        "audit_events", 60_000,
    ),
}
COSTS = {"sqlite": SQLITE, "postgres": POSTGRESQL, "mysql": MYSQL}
UNKNOWN = RevisionCost("not described for this dialect: see the revision file")

_SIZE_SQL = {
    "postgres": "SELECT pg_database_size(current_database())",
    "mysql": "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
    "WHERE table_schema = DATABASE()",
    "sqlite": "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
}


def cost(driver: str, revision: str) -> RevisionCost:
    """The cost of ``revision``'s upgrade on ``driver`` (``sqlite``, ``postgres``, ``mysql``)."""
    return COSTS.get(driver, {}).get(revision, UNKNOWN)


def storage_bytes(driver: str, connection: Connection) -> int | None:
    """The space the database takes on its server (or file), read in the caller's transaction."""
    sql = _SIZE_SQL.get(driver)
    if sql is None:
        return None
    value = connection.exec_driver_sql(sql).scalar()
    return int(value) if value is not None else None
