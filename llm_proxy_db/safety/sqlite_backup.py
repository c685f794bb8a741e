"""Backups and restores of a SQLite database file (the SQLite side of :mod:`llm_proxy_db.safety.backup`).

The copies themselves are the dialect's (:mod:`llm_proxy_db.dialects.sqlite.backup`: a checked
copy that records its origin); this module names and rotates them and runs a restore.
Automatic backups are named ``<database>.<identity>.<UTC time>.<revision>.bak`` and
rotated per database (the identity is a digest of the database's real path, so databases
sharing a backup directory never rotate each other's backups); explicit ones (``--out``)
and the safety copy a restore keeps (``.pre-restore.bak``) are never deleted by rotation.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.adoption.known_states import revision_fingerprints
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.base import REQUIRED_TABLES
from llm_proxy_db.dialects.sqlite.backup import (
    ORIGIN_TABLE,
    _revision_read_by_sqlite,
    backup_origin,
    check_database,
    copy_database,
    needs_backup,
)
from llm_proxy_db.dialects.sqlite.connection import check_sqlite_path, is_sqlite_file
from llm_proxy_db.errors import BackupError
from llm_proxy_db.events import Progress
from llm_proxy_db.files import (
    identity,
    match_database,
    real_path,
    remove_leftovers,
    remove_with_side_files,
    written_then_renamed,
)
from llm_proxy_db.migration import adoption_record, revisions, run_log
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.safety.backup_result import RestoreResult
from llm_proxy_db.safety.locking import migration_lock
from llm_proxy_db.safety.restore_in_place import replace_contents
from llm_proxy_db.schema.fingerprint import Fingerprint
from llm_proxy_db.schema.fingerprint_diff import diff

# Differences a restore accepts: things an operator added to a known schema.
OPERATOR_ADDITIONS = ("unexpected index ", "unexpected column ", "unexpected table ")

_STAMP = "%Y%m%dT%H%M%SZ"


def backup(settings: Settings, out: Path | None, directory: Path, keep: int) -> Path:
    """Copy the database now: to ``out`` (a file that must not exist, or a directory), else
    into ``directory`` under the rotated name."""
    database = _database_file(settings)
    revision = _read_revision(settings)
    if out is None:
        return take_backup(settings, revision, directory, keep)
    target = out
    if target.is_dir() or str(out).endswith(os.sep):
        target = _free_name(target, _prefix(database), revision, "bak")
    if target.exists():
        raise BackupError(f"{target} already exists; choose another --out")
    copy_database(database, target, revision=revision)
    return target


def take_backup(settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
    """The automatic backup before a schema change: write, check, then rotate old ones."""
    database = _database_file(settings)
    remove_leftovers(directory)
    target = _free_name(directory, _prefix(database), revision, "bak")
    copy_database(database, target, revision=revision)
    prune(directory, _prefix(database), keep, protect=target)
    return target


def prune(directory: Path, prefix: str, keep: int, *, protect: Path) -> list[Path]:
    """Delete the oldest automatic backups of one database beyond ``keep``.

    ``prefix`` is ``<database name>.<identity>``: other databases' backups in a shared
    directory never match it; ``protect`` is never deleted.
    """
    pattern = re.compile(
        rf"^{re.escape(prefix)}\.(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.[A-Za-z0-9_]+\.bak$"
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
    source: Path,
    directory: Path,
    *,
    lock_timeout: float | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> RestoreResult:
    """Replace the database with ``source`` (a backup), under the migration lock.

    The backup's schema must be recognised and it must come from this database (its
    recorded origin), unless ``force``.  A readable database is first copied aside
    (``.pre-restore.bak``) and then overwritten *in place*, in one write transaction
    (:mod:`llm_proxy_db.safety.restore_in_place`): the same file (its inode, mode, owner and every
    symlink to it) gets the backup's contents, the service's writers wait for the lock and
    then see the restored content; nothing is written to a file nobody reads.  A damaged or unreadable
    database is kept aside byte for byte and replaced by an atomic rename.
    """
    revision = inspect_backup(source)
    database = _database_file(settings, must_exist=False)
    if not database.exists():
        check_sqlite_path(database)  # creates the directory of a database restored anew
    origin = _check_origin(source, database, force)
    with migration_lock(settings, None, timeout=lock_timeout, progress=progress):
        started = run_log.now()
        remove_leftovers(directory)
        remove_leftovers(database.parent)
        staged = _staged_copy(source, database)
        try:
            damaged = database.exists() and not _healthy(database)
            keep = needs_backup(settings)
            if damaged or not database.exists():
                safety = _safety_copy(database, directory, damaged) if keep else None
                _swap(staged, database)
            else:
                timeout = 30.0 if lock_timeout is None else max(lock_timeout, 1.0)
                safety = replace_contents(
                    database, staged, timeout,
                    lambda: _safety_copy(database, directory, False) if keep else None,
                )
        finally:
            remove_with_side_files(staged)
        _log_restore(settings, source, revision, safety, started)
    return RestoreResult(settings.describe(), source, revision, safety, damaged, origin)


def _log_restore(
    settings: Settings, source: Path, revision: str | None, safety: Path | None, started: datetime
) -> None:
    """Record the restore in the restored database's run log (after the swap: the log the
    database carried in the backup is kept and continued)."""
    entry = run_log.Entry(
        "restore", None, None, revision, started, run_log.now(),
        backup_file=str(safety) if safety else None, detail=f"restored from {real_path(source)}",
    )
    for attempt in range(3):  # the service may hold the write lock right after the swap
        try:
            with connect(settings, create=False) as connection:
                run_log.write(connection, entry)
                connection.commit()
            return
        except sa.exc.OperationalError:
            if attempt == 2:
                # The restore itself is done and committed: a busy database must not turn it
                # into a reported failure.  The missing log row is the lesser loss.
                return
            time.sleep(1.0)


def _check_origin(source: Path, database: Path, force: bool) -> str | None:
    """The backup's recorded origin; a backup of another database is refused unless forced.

    Restoring into a database that does not exist yet (a move to a new disk) is allowed.
    """
    origin = backup_origin(source)
    if origin is None or origin[1] == identity(database) or force or not database.exists():
        return origin[0] if origin else None
    raise BackupError(
        f"{source} is a backup of another database ({origin[0]}), not of {database}",
        hint="pass --force to restore it here anyway; the database was not touched",
    )


def _staged_copy(source: Path, database: Path) -> Path:
    """A checked private copy of the backup beside the database, without the origin table."""
    staged = database.with_name(f".{database.name}.restore.{os.getpid()}.tmp")
    remove_with_side_files(staged)
    copy_database(source, staged, origin=False)
    connection = sqlite3.connect(str(staged), isolation_level=None)
    try:
        connection.execute(f"DROP TABLE IF EXISTS {ORIGIN_TABLE}")
    finally:
        connection.close()
    return staged


def _healthy(database: Path) -> bool:
    try:
        check_database(database)
    except BackupError:
        return False
    return True


def _swap(staged: Path, database: Path) -> None:
    """Rename the staged copy over a damaged or missing database (mode and owner kept)."""
    match_database(staged, database if database.exists() else None)
    os.replace(staged, database)
    for suffix in ("-wal", "-shm", "-journal"):
        _remove_quietly(database.with_name(database.name + suffix))


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
    differences = tuple(line for line in differences if not line.startswith(OPERATOR_ADDITIONS))
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
    with connect(settings, create=False) as connection:
        return current_revision(connection)


def _safety_copy(database: Path, directory: Path, damaged: bool) -> Path:
    """The current database, kept before it is replaced: a checked copy, or for a damaged
    file its bytes (with its journal files, if any, beside it)."""
    prefix = _prefix(database)
    if not damaged:
        # Called while the restore holds the database's write lock: read through SQLite only.
        # (A plain open() and close() of the file in this process, as an engine's header check
        # does, would drop that POSIX lock and let the service write in between.)
        revision = _revision_read_by_sqlite(database)
        target = _free_name(directory, prefix, revision, "pre-restore.bak")
        copy_database(database, target, revision=revision)
        return target
    target = _free_name(directory, prefix, "damaged", "pre-restore.bak")
    with written_then_renamed(target, database) as temporary:
        shutil.copyfile(database, temporary)
    return target


def _free_name(directory: Path, database_name: str, revision: str | None, suffix: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    rev = revision or "base"
    candidate = directory / f"{database_name}.{stamp}.{rev}.{suffix}"
    counter = 2
    while candidate.exists():
        candidate = directory / f"{database_name}.{stamp}-{counter}.{rev}.{suffix}"
        counter += 1
    return candidate


def _prefix(database: Path) -> str:
    """``<name>.<identity>``: the start of every automatic backup name of ``database``."""
    return f"{database.name}.{identity(database)}"


def _database_file(settings: Settings, *, must_exist: bool = True) -> Path:
    assert settings.database_path is not None
    path = real_path(settings.database_path)
    if path.is_dir():
        raise BackupError(f"{path} is a directory, not a SQLite database file")
    if must_exist and not path.is_file():
        raise BackupError(f"SQLite database {path} does not exist")
    return path


def _remove_quietly(path: Path) -> None:
    """Remove a partial copy; a file that cannot be removed (read-only place) is left."""
    with contextlib.suppress(OSError):
        path.unlink()
