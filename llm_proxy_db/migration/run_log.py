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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects.base import RUN_LOG_TABLE
from llm_proxy_db.migration.run_log_entry import Entry, applied_at

__all__ = ["Entry", "applied_at", "backup_file", "entries", "now", "write"]

_backup_file: ContextVar[str | None] = ContextVar("llm_proxy_backup_file", default=None)

_metadata = sa.MetaData()
_table = sa.Table(
    RUN_LOG_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("ended_at", sa.DateTime, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
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


def _entry(row: Any) -> Entry:
    return Entry(
        action=row.action, revision=row.revision, from_revision=row.from_revision,
        to_revision=row.to_revision, started_at=row.started_at, ended_at=row.ended_at,
        outcome=row.outcome, backup_file=row.backup_file, detail=row.detail,
        tool_version=row.tool_version, host=row.host, os_user=row.os_user,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        import os

        return str(os.geteuid())
