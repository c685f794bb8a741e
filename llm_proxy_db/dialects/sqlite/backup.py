"""SQLite's backup primitives: a checked copy of a database file that records its origin.

A backup is a byte copy of a pinned snapshot of the file, ``quick_check``ed while it is copied
(:mod:`llm_proxy_db.dialects.sqlite.snapshot`), or, when no snapshot of the file alone can be
pinned, a copy made with SQLite's online backup API in one step and then checked (a consistent
snapshot even while the service writes, WAL content included).  It is written under a
temporary name, given the database's mode and owner, then renamed (:mod:`llm_proxy_db.files`).
Each copy records where it came from in a small table of its own (``llm_proxy_backup_origin``:
the database's real path, its identity, the revision).  Naming, rotation and restores are
:mod:`llm_proxy_db.safety.sqlite_backup`'s.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from llm_proxy_db import __version__
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.sqlite.snapshot import snapshot_copy
from llm_proxy_db.errors import BackupError
from llm_proxy_db.files import identity, real_path, written_then_renamed

ORIGIN_TABLE = "llm_proxy_backup_origin"


def default_backup_directory(settings: Settings) -> Path:
    """Beside the database's real file."""
    assert settings.database_path is not None
    return real_path(settings.database_path).parent


def needs_backup(settings: Settings) -> bool:
    """False for a SQLite file that does not exist yet or holds no table (nothing to lose)."""
    assert settings.database_path is not None
    path = settings.database_path
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return bool(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return True  # unreadable here: let the backup itself report the problem


def copy_database(
    source: Path, target: Path, *, revision: str | None = None, origin: bool = True
) -> None:
    """Copy ``source`` to ``target`` (:func:`online_copy`), check it, then rename.

    The copy is written under a temporary name with mode 0600, records its origin (unless
    ``origin`` is False), is ``quick_check``ed (the snapshot it was copied from, or the copy
    itself after a backup-API copy), gets ``source``'s mode and owner, and only
    then takes its name.  ``target`` must not exist: nothing existing is ever overwritten,
    and a failed or interrupted copy leaves nothing behind.
    """
    if target.exists() or target.is_symlink():
        raise BackupError(f"{target} already exists; refusing to overwrite it")
    try:
        with written_then_renamed(target, real_path(source)) as temporary:
            checked = online_copy(source, temporary)
            if origin:
                _record_origin(temporary, source, revision)
            if not checked:
                check_database(temporary)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BackupError(
            f"cannot write the backup {target}: {reason}",
            hint="free disk space or choose a writable --backup-dir (or pass --no-backup)",
        ) from None


def online_copy(source: Path, target: Path) -> bool:
    """Copy the database ``source`` into the (empty) file ``target``; True if it was checked.

    The fast way is a byte copy of a pinned snapshot, ``quick_check``ed while it is copied
    (:mod:`llm_proxy_db.dialects.sqlite.snapshot`).  When no such snapshot can be pinned, the
    copy is made with the backup API in one step (returns False: the caller checks the copy).
    One step (``pages=-1``) holds the source's read lock for the whole copy, so a concurrent
    write waits instead of restarting the copy.  The target is a private temporary file
    that is removed on any failure, so it is written without a journal or syncs (the caller
    syncs it once before the rename).  The copy is left in rollback-journal mode, so it can
    be read without write access to its directory.
    """
    with contextlib.suppress(sqlite3.Error):  # e.g. no write access for the checkpoint
        if snapshot_copy(real_path(source), target):
            _leave_wal_mode(target)
            return True
    os.truncate(target, 0)
    reader = sqlite3.connect(f"{real_path(source).as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        writer = sqlite3.connect(str(target), isolation_level=None)
        try:
            writer.execute("PRAGMA journal_mode=OFF")
            writer.execute("PRAGMA synchronous=OFF")
            reader.backup(writer, pages=-1)
            writer.execute("PRAGMA journal_mode=DELETE")
        finally:
            writer.close()
    finally:
        reader.close()
    return False


def _leave_wal_mode(copy: Path) -> None:
    """A byte copy keeps the source's journal mode: put it in rollback-journal mode, so the
    backup can be read without write access to its directory."""
    connection = sqlite3.connect(str(copy), isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE").fetchall()
    finally:
        connection.close()


def _record_origin(copy: Path, source: Path, revision: str | None) -> None:
    """Write the small origin table into the copy (never into the database itself)."""
    connection = sqlite3.connect(str(copy), isolation_level=None)
    try:
        connection.execute(
            f"CREATE TABLE {ORIGIN_TABLE} (database TEXT NOT NULL, identity TEXT NOT NULL, "
            "revision TEXT, taken_at TEXT NOT NULL, tool_version TEXT NOT NULL)"
        )
        taken = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        connection.execute(
            f"INSERT INTO {ORIGIN_TABLE} VALUES (?, ?, ?, ?, ?)",
            (str(real_path(source)), identity(source), revision, taken, __version__),
        )
    finally:
        connection.close()


def backup_origin(path: Path) -> tuple[str, str] | None:
    """(real path, identity) of the database a backup came from; None for an old backup."""
    connection = sqlite3.connect(f"{real_path(path).as_uri()}?mode=ro", uri=True)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (ORIGIN_TABLE,)
        ).fetchone()
        if not exists:
            return None
        row = connection.execute(f"SELECT database, identity FROM {ORIGIN_TABLE}").fetchone()
        return (str(row[0]), str(row[1])) if row else None
    finally:
        connection.close()


def check_database(path: Path) -> None:
    """Raise :class:`BackupError` unless ``PRAGMA quick_check`` says ``ok``."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            rows = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be read as a SQLite database: {exc}") from None
    if rows != ["ok"]:
        raise BackupError(f"{path} failed PRAGMA quick_check: {'; '.join(map(str, rows[:3]))}")


def _revision_read_by_sqlite(database: Path) -> str | None:
    connection = sqlite3.connect(f"{real_path(database).as_uri()}?mode=ro", uri=True)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone() if exists else None
        return str(row[0]) if row else None
    finally:
        connection.close()
