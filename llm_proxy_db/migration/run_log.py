"""The run log: one row per revision applied or reverted, adoption, forced stamp and restore.

A small table of this tool's own, ``llm_proxy_run_log``, created on the first change this
tool makes and written in the same transaction as the change where the dialect allows
(SQLite, PostgreSQL: DDL is transactional); a failure is recorded after the rollback.
Like ``llm_proxy_adoption`` it is not one of the service's tables: fingerprints, known
states, drift and ``alembic check`` ignore it, and the service never reads it.  Reads
(``migrate log``, ``migrate history``) never create it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import platform
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects.base import RUN_LOG_TABLE
from llm_proxy_db.migration.run_log_entry import Entry, applied_at
from llm_proxy_db.migration.version_table import current_revision

__all__ = [
    "Entry", "ReplacedDatabase", "applied_at", "backup_file", "carry_over", "entries", "now", "record_restore", "write",
]

_backup_file: ContextVar[str | None] = ContextVar("llm_proxy_backup_file", default=None)

# Microseconds on every dialect (MySQL's plain DATETIME keeps whole seconds).  A table made by
# an older release keeps its whole-second columns: durations come from ``seconds``, which
# is measured here, not by the server.
_MOMENT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_metadata = sa.MetaData()
_table = sa.Table(
    RUN_LOG_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", _MOMENT, nullable=False),
    sa.Column("ended_at", _MOMENT, nullable=False),
    sa.Column("seconds", sa.Float(precision=53), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("from_revision", sa.String(64)),
    sa.Column("to_revision", sa.String(64)),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("tool_version", sa.String(40), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("os_user", sa.String(255), nullable=False),
    sa.Column("backup_file", sa.Text),
    sa.Column("detail", sa.Text),
)


def now() -> dt.datetime:
    """The current UTC time (naive, as stored)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@contextmanager
def backup_file(path: object) -> Iterator[None]:
    """Entries written inside the block name ``path`` as the backup taken before the run."""
    token = _backup_file.set(str(path) if path is not None else None)
    try:
        yield
    finally:
        _backup_file.reset(token)


def write(connection: Connection, entry: Entry) -> None:
    """Add ``entry`` inside the caller's transaction, creating the table on first use."""
    _metadata.create_all(connection, checkfirst=True)
    connection.execute(
        _table.insert(),
        {
            "started_at": entry.started_at, "ended_at": entry.ended_at, "seconds": entry.seconds,
            "action": entry.action, "revision": entry.revision,
            "from_revision": entry.from_revision, "to_revision": entry.to_revision,
            "outcome": entry.outcome, "tool_version": entry.tool_version,
            "host": entry.host or platform.node(), "os_user": entry.os_user or _os_user(),
            "backup_file": entry.backup_file or _backup_file.get(), "detail": entry.detail,
        },
    )


def entries(connection: Connection, limit: int | None = None) -> list[Entry]:
    """The logged runs, oldest first (the newest ``limit`` when given); [] without a log."""
    if not sa.inspect(connection).has_table(RUN_LOG_TABLE):
        return []
    query = sa.select(_table).order_by(_table.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = list(connection.execute(query))
    return [_entry(row) for row in reversed(rows)]


def _key(entry: Entry) -> tuple[object, ...]:
    return (
        entry.started_at.replace(microsecond=0), entry.action, entry.revision, entry.from_revision,
        entry.to_revision, entry.outcome, entry.host, entry.os_user,
    )


def carry_over(connection: Connection, replaced: list[Entry]) -> int:
    """After a restore: add to the restored log the runs of the replaced database's log that it
    lacks (those recorded after the backup was taken), oldest first; returns how many.

    A restore brings the schema and rows back, not the past: the runs made between the backup
    and the restore did happen (and their backups exist), so ``migrate log`` keeps them,
    followed by the restore itself.  Runs are matched by what they were (time to the second,
    action, revisions, outcome, host, user), not by id, which the two logs may share.
    """
    present = Counter(_key(entry) for entry in entries(connection))
    missing = []
    for entry in replaced:  # a multiset difference: two like runs in one second are two runs
        if present[_key(entry)]:
            present[_key(entry)] -= 1
        else:
            missing.append(entry)
    for entry in missing:
        write(connection, entry)
    return len(missing)


@dataclass(frozen=True)
class ReplacedDatabase:
    """What a restore replaces, read before it: its revision and its run log."""

    revision: str | None = None
    log: tuple[Entry, ...] = ()

    @classmethod
    def read(cls, connection: Connection) -> ReplacedDatabase:
        """The revision and run log on ``connection`` (in the caller's transaction)."""
        return cls(current_revision(connection), tuple(entries(connection)))


def record_restore(
    connection: Connection,
    replaced: ReplacedDatabase,
    restored_revision: str | None,
    started: dt.datetime,
    *,
    source: str,
    safety_copy: str | None,
) -> None:
    """Log a restore on the restored database, in the caller's transaction: the runs the
    replaced database recorded after the backup (:func:`carry_over`), then the restore itself
    from the revision it replaced to the one it brought back."""
    carried = carry_over(connection, list(replaced.log))
    detail = f"restored from {source}"
    if carried:
        detail += f"; {carried} run(s) recorded after the backup was taken kept in this log"
    write(connection, Entry(
        "restore", None, replaced.revision, restored_revision, started, now(),
        backup_file=safety_copy, detail=detail,
    ))


def _entry(row: Any) -> Entry:
    return Entry(
        action=row.action, revision=row.revision, from_revision=row.from_revision,
        to_revision=row.to_revision, started_at=row.started_at, ended_at=row.ended_at,
        outcome=row.outcome, backup_file=row.backup_file, detail=row.detail,
        tool_version=row.tool_version, host=row.host, os_user=row.os_user,
        duration=None if row.seconds is None else float(row.seconds),
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        import os

        return str(os.geteuid())
