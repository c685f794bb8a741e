"""Backups and restores of the SQLite database file (and ``pg_dump`` for PostgreSQL).

A backup is a ``VACUUM INTO`` copy: a consistent snapshot even while the service writes,
compact, and a valid database on its own (WAL content included).  Every copy is checked
with ``PRAGMA quick_check`` before anything relies on it.  Automatic backups are named
``<database>.<UTC time>.<revision>.bak`` and rotated; explicit ones (``--out``) and the
safety copy a restore keeps (``.pre-restore.bak``) are never deleted by the rotation.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from llm_proxy_db import revisions
from llm_proxy_db.database import check_sqlite_path, connect, is_sqlite_file
from llm_proxy_db.errors import BackupError, ConfigError
from llm_proxy_db.executor import Progress
from llm_proxy_db.locking import migration_lock
from llm_proxy_db.pg_tools import pg_dump
from llm_proxy_db.settings import Settings, number_from_env
from llm_proxy_db.version_table import current_revision

BACKUP_DIR_ENV = "LLM_PROXY_BACKUP_DIR"
KEEP_BACKUPS_ENV = "LLM_PROXY_KEEP_BACKUPS"
DEFAULT_KEEP_BACKUPS = 5
REQUIRED_TABLES = ("projects", "tokens")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the file restored, its revision, and the safety copy kept."""

    database: str
    restored_from: Path
    revision: str | None
    safety_copy: Path | None


def backup_directory(settings: Settings, backup_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where automatic backups go: ``backup_dir``, ``LLM_PROXY_BACKUP_DIR``, or next to the file."""
    chosen = backup_dir or os.environ.get(BACKUP_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    if settings.is_sqlite:
        assert settings.database_path is not None
        return settings.database_path.parent
    return Path.cwd()


def keep_backups(value: int | None = None, env: Mapping[str, str] | None = None) -> int:
    """How many automatic backups to keep: ``value``, ``LLM_PROXY_KEEP_BACKUPS``, or 5."""
    if value is None:
        value = number_from_env(KEEP_BACKUPS_ENV, int, DEFAULT_KEEP_BACKUPS, "a whole number", env)
    if value < 1:
        raise ConfigError(
            f"keep at least one backup (got {value})", hint="use --no-backup to skip backups"
        )
    return value


def backup(
    settings: Settings,
    out: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
) -> Path:
    """Back the database up now; returns the file written (checked before returning).

    Without ``out`` the copy goes into the backup directory under the rotated name.
    PostgreSQL databases are dumped with ``pg_dump --format=custom`` when it is installed.
    """
    revision = _read_revision(settings)
    if settings.is_mysql:  # mariadb-dump / mysqldump --single-transaction into a .sql file
        from llm_proxy_db.dialects import mysql

        target = Path(out) if out else backup_directory(settings, backup_dir) / _pg_name(settings, revision)
        return mysql.run_backup(settings, target.with_suffix(".sql") if not out else target)
    if not settings.is_sqlite:
        directory = backup_directory(settings, backup_dir)
        return pg_dump(settings, Path(out) if out else directory / _pg_name(settings, revision))
    if out is not None:
        target = Path(out).expanduser()
        if target.is_dir() or str(out).endswith(os.sep):
            target = _free_name(target, _database_file(settings).name, revision, "bak")
        if target.exists():
            raise BackupError(f"{target} already exists; choose another --out")
        copy_database(_database_file(settings), target)
        return target
    return take_backup(settings, revision, backup_dir=backup_dir, keep=keep)


def take_backup(
    settings: Settings,
    revision: str | None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
) -> Path:
    """The automatic backup before a schema change: write, check, then rotate old ones."""
    keep = keep_backups(keep)
    directory = backup_directory(settings, backup_dir)
    database = _database_file(settings)
    target = _free_name(directory, database.name, revision, "bak")
    copy_database(database, target)
    prune(directory, database.name, keep, protect=target)
    return target


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


def copy_database(source: Path, target: Path) -> None:
    """``VACUUM INTO`` ``target`` and ``quick_check`` it; a failed copy is removed.

    ``target`` must not exist: only a file this function created is ever removed.
    """
    if target.exists() or target.is_symlink():
        raise BackupError(f"{target} already exists; refusing to overwrite it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _vacuum_into(source, target)
        check_database(target)
    except (OSError, sqlite3.Error) as exc:
        _remove_quietly(target)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BackupError(
            f"cannot write the backup {target}: {reason}",
            hint="free disk space or choose a writable --backup-dir (or pass --no-backup)",
        ) from None
    except BackupError:
        _remove_quietly(target)
        raise


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


def prune(directory: Path, database_name: str, keep: int, *, protect: Path) -> list[Path]:
    """Delete the oldest automatic backups beyond ``keep``; ``protect`` is never deleted."""
    pattern = re.compile(
        rf"^{re.escape(database_name)}\.(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.[A-Za-z0-9_]+\.bak$"
    )
    found = []
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match and path != protect:
            found.append(((match.group(1), int(match.group(2) or 1)), path))
    found.sort()
    doomed = [path for _key, path in found[: max(0, len(found) - (keep - 1))]]
    for path in doomed:
        _remove_quietly(path)
    return doomed


def restore(
    settings: Settings,
    file: str | os.PathLike[str],
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    lock_timeout: float | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Replace the database with ``file`` (a backup), atomically, under the migration lock.

    The current database is first copied aside (``.pre-restore.bak``); stale ``-wal`` and
    ``-shm`` files of the replaced database are checkpointed and removed.
    """
    _require_sqlite(settings, "restore")
    source = Path(file).expanduser()
    revision = inspect_backup(source)
    database = _database_file(settings, must_exist=False)
    check_sqlite_path(database)
    with migration_lock(settings, None, timeout=lock_timeout, progress=progress):
        safety = _safety_copy(settings, backup_dir) if needs_backup(settings) else None
        staged = database.with_name(f".{database.name}.restore-{os.getpid()}.tmp")
        copy_database(source, staged)
        _checkpoint(database)
        os.replace(staged, database)
        for suffix in ("-wal", "-shm"):
            _remove_quietly(database.with_name(database.name + suffix))
    return RestoreResult(settings.describe(), source, revision, safety)


def inspect_backup(path: Path) -> str | None:
    """Check that ``path`` is a sound llm-proxy SQLite database; returns its revision.

    Its schema must be recognisable: versioned at a revision whose known schema it has
    exactly (or adopted with ``--force-stamp``, whose differences were accepted), or
    unversioned in exactly one known state; anything else is a :class:`BackupError` listing
    the differences.
    """
    if not path.exists():
        raise BackupError(f"backup file {path} does not exist")
    if not path.is_file() or not is_sqlite_file(path) or path.stat().st_size == 0:
        raise BackupError(f"{path} is not a SQLite database file")
    check_database(path)
    with connect(Settings(driver="sqlite", database_path=path), create=False) as connection:
        tables = set(sa.inspect(connection).get_table_names())
        revision = current_revision(connection)
        missing = [name for name in REQUIRED_TABLES if name not in tables]
        if missing:
            raise BackupError(
                f"{path} does not hold an llm-proxy database (no {', '.join(missing)} table)"
            )
        revisions.position(revision)  # a backup written by a newer release is refused
        where, differences = _schema_differences(connection, revision)
    if differences:
        raise BackupError(
            f"{path} does not hold a recognisable llm-proxy schema (differences from {where}):\n"
            + "\n".join(f"  - {line}" for line in differences),
            hint="restore a backup this tool took, or repair the file first; the database was "
            "not touched",
        )
    return revision


def _schema_differences(connection: sa.Connection, revision: str | None) -> tuple[str, tuple[str, ...]]:
    """What the schema is compared with, and how it differs (nothing: it is recognised)."""
    from llm_proxy_db import adoption, adoption_record
    from llm_proxy_db.fingerprint import Fingerprint
    from llm_proxy_db.fingerprint_diff import diff
    from llm_proxy_db.known_states import revision_fingerprints

    detection = adoption.detect(connection)
    if detection.kind == adoption.VERSIONED:
        record = adoption_record.latest(connection)
        if record is not None and record.forced:
            return f"revision {revision}", ()  # a forced adoption's differences were accepted
        prints = revision_fingerprints(connection)
        expected = prints[revision] if revision else Fingerprint(tables={})
        return f"revision {revision or 'base'}", tuple(diff(detection.fingerprint, expected))
    if detection.kind == adoption.KNOWN:
        return detection.state_name, ()
    nearest = detection.nearest.name if detection.nearest else "every known state"
    return nearest, detection.differences or (detection.problem or "no known schema state",)


def _read_revision(settings: Settings) -> str | None:
    if settings.is_sqlite:
        _database_file(settings)
    with connect(settings, create=False) as connection:
        return current_revision(connection)


def _safety_copy(settings: Settings, backup_dir: str | os.PathLike[str] | None) -> Path:
    database = _database_file(settings)
    with connect(settings, create=False) as connection:
        revision = current_revision(connection)
    directory = backup_directory(settings, backup_dir)
    target = _free_name(directory, database.name, revision, "pre-restore.bak")
    copy_database(database, target)
    return target


def _checkpoint(database: Path) -> None:
    """Fold a WAL into the file (and roll back a hot journal) before it is replaced."""
    if not database.exists():
        return
    connection = sqlite3.connect(str(database), isolation_level=None, timeout=30)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _free_name(directory: Path, database_name: str, revision: str | None, suffix: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    rev = revision or "base"
    candidate = directory / f"{database_name}.{stamp}.{rev}.{suffix}"
    counter = 2
    while candidate.exists():
        candidate = directory / f"{database_name}.{stamp}-{counter}.{rev}.{suffix}"
        counter += 1
    return candidate


def _pg_name(settings: Settings, revision: str | None) -> str:
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    return f"{settings.sqlalchemy_url().database}.{stamp}.{revision or 'base'}.dump"


def _vacuum_into(source: Path, target: Path) -> None:
    connection = sqlite3.connect(str(source), isolation_level=None, timeout=30)
    try:
        connection.execute("VACUUM INTO ?", (str(target),))
    finally:
        connection.close()


def _database_file(settings: Settings, *, must_exist: bool = True) -> Path:
    _require_sqlite(settings, "this operation")
    assert settings.database_path is not None
    path = settings.database_path
    if path.is_dir():
        raise BackupError(f"{path} is a directory, not a SQLite database file")
    if must_exist and not path.is_file():
        raise BackupError(f"SQLite database {path} does not exist")
    return path


def _require_sqlite(settings: Settings, what: str) -> None:
    if not settings.is_sqlite:
        raise ConfigError(
            f"{what} works on SQLite files only",
            hint="for PostgreSQL use pg_dump / pg_restore (llm-proxy db backup runs pg_dump)",
        )


def _remove_quietly(path: Path) -> None:
    """Remove a partial copy; a file that cannot be removed (read-only place) is left."""
    with contextlib.suppress(OSError):
        path.unlink()
