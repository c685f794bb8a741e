"""``migrate up --dry-run``: the plan of an upgrade, read without changing anything.

For each pending revision: what it locks and for how long it is expected to (the dialect's
:mod:`~llm_proxy_db.dialects.revision_costs`), the rows it rewrites (counted now); then the
backup the run would take first and its size.  Nothing is written: no database file, no lock
file, no table, no backup directory; the counts run in one read-only transaction, rolled back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for, revision_costs
from llm_proxy_db.migration import revisions
from llm_proxy_db.safety.backup import backup_directory


@dataclass(frozen=True)
class PlannedStep:
    """One revision of the plan."""

    revision: str
    description: str
    locks: str
    table: str | None
    rows: int
    work: str
    expected_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "revision": self.revision, "description": self.description, "locks": self.locks,
            "table": self.table, "rows": self.rows, "work": self.work,
            "expected_seconds": round(self.expected_seconds, 2),
        }


@dataclass(frozen=True)
class UpgradePlan:
    """What ``migrate up`` would do: from where to where, each step, and the backup first."""

    database: str
    current: str | None
    target: str | None
    steps: list[PlannedStep] = field(default_factory=list)
    backup: str | None = None  # what would be backed up where, in words; None: no backup
    backup_bytes: int | None = None
    database_bytes: int | None = None
    note: str | None = None  # an unversioned database adopted first, a missing file created

    @property
    def expected_seconds(self) -> float:
        """The whole run's expected duration (lock waits not counted)."""
        return sum(step.expected_seconds for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json``)."""
        return {
            "database": self.database, "current_revision": self.current, "target_revision": self.target,
            "steps": [step.as_dict() for step in self.steps], "backup": self.backup,
            "backup_bytes": self.backup_bytes, "database_bytes": self.database_bytes,
            "expected_seconds": round(self.expected_seconds, 2), "note": self.note, "changed": False,
        }


def plan_upgrade(
    settings: Settings,
    current: str | None,
    pending: list[str],
    target: str | None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    no_backup: bool = False,
    note: str | None = None,
) -> UpgradePlan:
    """The plan of moving from ``current`` through ``pending`` (already cut at ``target``)."""
    described = {info.id: info.description for info in revisions.chain()}
    counts: dict[str, int] = {}
    size: int | None = None
    if not settings.known_missing():
        with connect(settings, create=False) as connection:
            counts = _row_counts(connection, settings.driver, pending)
            size = revision_costs.storage_bytes(settings.driver, connection)
            connection.rollback()
    steps = []
    for revision in pending:
        cost = revision_costs.cost(settings.driver, revision)
        rows = counts.get(cost.table or "", 0)
        steps.append(PlannedStep(
            revision, described.get(revision, ""), cost.locks, cost.table, rows, cost.work,
            cost.expected_seconds(rows),
        ))
    backup, backup_bytes = _backup_words(settings, bool(steps), size, backup_dir, no_backup)
    return UpgradePlan(
        settings.describe(), current, target, steps, backup, backup_bytes, size, note,
    )


def _row_counts(connection: sa.Connection, driver: str, pending: list[str]) -> dict[str, int]:
    tables = {revision_costs.cost(driver, revision).table for revision in pending} - {None}
    existing = set(sa.inspect(connection).get_table_names())
    quote = connection.dialect.identifier_preparer.quote
    return {
        table: int(connection.exec_driver_sql(f"SELECT count(*) FROM {quote(table)}").scalar() or 0)
        for table in sorted(t for t in tables if t in existing)
    }


def _backup_words(
    settings: Settings, changes: bool, size: int | None, backup_dir: str | os.PathLike[str] | None,
    no_backup: bool,
) -> tuple[str | None, int | None]:
    if not changes:
        return None, None
    if no_backup:
        return "none (--no-backup)", None
    if not dialect_for(settings).BACKUP_BEFORE_EVERY_CHANGE:
        return "none before an upgrade (a dump is taken before a downgrade allowed to lose data)", None
    if not dialect_for(settings).needs_backup(settings):
        return "none (the database holds nothing yet)", None
    directory: Path = backup_directory(settings, backup_dir)
    return f"a checked copy of the database into {directory}", size
