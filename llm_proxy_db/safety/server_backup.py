"""Backups and restores of a server database (PostgreSQL, MySQL/MariaDB): the orchestration.

Each server dialect package brings its tools (``RESTORE_TOOLS``, all checked first):
``dump(settings, target)`` (``pg_dump``, ``mariadb-dump``; a private file renamed when
complete), ``inspect_dump(path)`` (reads a dump without loading it), ``load_dump(settings,
dump)`` (``pg_restore``, ``mariadb``) and ``drop_everything(connection)``; a dialect whose
``LOAD_REPLACES`` is true drops the old contents inside its load's own transaction (a failed
load changes nothing), so step 2 does not drop them first.  This module (the
safety layer, above the dialects) names the dumps and runs a restore:

1. the dump is checked before anything is touched: a complete dump of our tool's kind holding
   ``projects`` and ``tokens``, at a revision this code knows (else exit 8, or 5 for a
   revision of a newer release);
2. under the migration lock (ours and the service's: no migration, no starting replica
   meanwhile), a database holding any table is refused (exit 8) unless ``force``; with it,
   the current contents are dumped first (``*.pre-restore.<suffix>`` in the backup
   directory), then dropped;
3. the dump is loaded into the empty database (which must then hold ``projects`` and
   ``tokens``) and the restore recorded in the run log; a signal meanwhile prints where the
   safety dump is (the client tool is killed as the exception passes).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import server_dialect_for
from llm_proxy_db.dialects.base import REQUIRED_TABLES, DumpInfo, ServerDialect
from llm_proxy_db.dialects.client_tools import find_tool
from llm_proxy_db.errors import BackupError, UnknownRevisionError
from llm_proxy_db.events import Progress
from llm_proxy_db.files import remove_leftovers
from llm_proxy_db.migration import revisions, run_log
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.safety.backup_result import RestoreResult
from llm_proxy_db.safety.locking import migration_lock

_STAMP = "%Y%m%dT%H%M%SZ"


def dump_path(directory: Path, settings: Settings, revision: str | None, suffix: str) -> Path:
    """``<database>.<UTC time>.<revision>.<suffix>`` in ``directory``, the name of an automatic
    dump; ``<UTC time>-2``, ``-3``, ... when taken within the same second as another."""
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    name, rev = settings.sqlalchemy_url().database, revision or "base"
    candidate, counter = directory / f"{name}.{stamp}.{rev}.{suffix}", 2
    while candidate.exists():
        candidate, counter = directory / f"{name}.{stamp}-{counter}.{rev}.{suffix}", counter + 1
    return candidate


def backup(settings: Settings, out: Path | None, directory: Path, keep: int) -> Path:
    """A dump now: to ``out`` (a file that must not exist, or a directory), else into ``directory``
    (dumps are not rotated: ``keep`` is ignored)."""
    dialect = server_dialect_for(settings)
    revision = read_revision(settings)
    if out is None:
        return take_backup(settings, revision, directory, keep)
    if out.is_dir() or str(out).endswith(os.sep):
        out = dump_path(out, settings, revision, dialect.backup_suffix())
    return dialect.dump(settings, out)


def take_backup(settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
    """A dump into ``directory`` under the automatic name (dumps are not rotated: ``keep`` is ignored)."""
    del keep
    dialect = server_dialect_for(settings)

    directory.mkdir(parents=True, exist_ok=True)
    remove_leftovers(directory)
    return dialect.dump(settings, dump_path(directory, settings, revision, dialect.backup_suffix()))


def read_revision(settings: Settings) -> str | None:
    """The database's current revision (a missing or unreachable database is an error)."""
    with connect(settings, create=False) as connection:
        return current_revision(connection)


def checked_dump(dialect: ServerDialect, source: Path) -> DumpInfo:
    """Step 1: ``source`` read by the dialect, holding our tables at a revision we know."""
    if not source.exists():
        raise BackupError(f"backup file {source} does not exist")
    if not source.is_file() or source.stat().st_size == 0:
        raise BackupError(f"{source} is not a {dialect.DUMP_DESCRIPTION}")
    info = dialect.inspect_dump(source)
    missing = [name for name in REQUIRED_TABLES if name not in info.tables]
    if missing:
        raise BackupError(
            f"{source} does not hold an llm-proxy database (no {', '.join(missing)} table)",
            hint="restore a backup this tool took; the database was not touched",
        )
    revisions.position(info.revision)  # a dump written by a newer release is refused
    return info


def restore(
    settings: Settings,
    source: Path,
    directory: Path,
    *,
    lock_timeout: float | None,
    progress: Progress | None,
    force: bool,
) -> RestoreResult:
    """Load the dump ``source`` into the database (see the module's docstring for the steps)."""
    dialect = server_dialect_for(settings)

    for names in dialect.RESTORE_TOOLS:  # all there before anything is read or touched
        find_tool(names, dialect.INSTALL_HINT)
    info = checked_dump(dialect, source)
    with connect(settings, create=False) as connection, migration_lock(
        settings, connection, timeout=lock_timeout, progress=progress
    ):
        started = run_log.now()
        safety = _replaceable(dialect, settings, connection, directory, force)
        try:
            if safety is not None and not getattr(dialect, "LOAD_REPLACES", False):
                dialect.drop_everything(connection)  # else the dialect's load drops, in its own transaction
            dialect.load_dump(settings, source)
        except BackupError as exc:
            raise _load_failed(exc, safety) from None
        except (KeyboardInterrupt, SystemExit):  # SIGINT, SIGTERM (the CLI's handler)
            _tell_interrupted(safety)
            raise
        connection.rollback()  # see what the load committed
        _check_loaded(connection, safety)
        revision = current_revision(connection)
        entry = run_log.Entry(
            "restore", None, None, revision, started, run_log.now(),
            backup_file=str(safety) if safety else None, detail=f"restored from {source.resolve()}",
        )
        run_log.write(connection, entry)
        connection.commit()
    return RestoreResult(settings.describe(), source, revision, safety, origin=info.database)


def _replaceable(
    dialect: ServerDialect, settings: Settings, connection: Connection, directory: Path, force: bool
) -> Path | None:
    """Step 2: None for an empty database; with ``force`` the safety dump of a non-empty one
    (the caller then empties it); otherwise the refusal."""


    connection.rollback()
    inspector = sa.inspect(connection)
    found = sorted([*inspector.get_table_names(), *inspector.get_view_names()])
    if not found:
        return None
    if not force:
        shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        raise BackupError(
            f"{settings.describe()} is not empty ({len(found)} tables: {shown}); refusing to "
            "restore over it",
            hint="pass --force to replace its contents (they are dumped first; stop the service: "
            "its writes after that dump are not kept); the database was not touched",
        )
    revision = current_revision(connection)
    connection.rollback()
    _warn_if_unknown(settings, revision)
    directory.mkdir(parents=True, exist_ok=True)
    return dialect.dump(settings, dump_path(directory, settings, revision, f"pre-restore.{dialect.backup_suffix()}"))


def _warn_if_unknown(settings: Settings, revision: str | None) -> None:
    """A forced restore over a database at a revision this code does not know (a newer
    release's): allowed (its contents are dumped first), but said on standard error."""
    try:
        revisions.position(revision)
    except UnknownRevisionError as exc:
        print(
            f"warning: {settings.describe()}: {exc.message}; --force replaces it (its contents are dumped first)",
            file=sys.stderr,
        )


def _check_loaded(connection: Connection, safety: Path | None) -> None:
    """After the load: our tables are in the target database, else the restore failed."""
    tables = set(sa.inspect(connection).get_table_names())
    missing = [name for name in REQUIRED_TABLES if name not in tables]
    if missing:
        raise _load_failed(
            BackupError(f"the load left no {', '.join(missing)} table in the database; the restore failed"),
            safety,
        )


def _tell_interrupted(safety: Path | None) -> None:
    """A restore stopped by a signal: where the previous contents are (the client tool is
    killed by :mod:`~llm_proxy_db.dialects.client_tools` as the exception passes)."""
    if safety is None:
        print("restore interrupted: the database held nothing before; restore again", file=sys.stderr)
    else:
        print(
            f"restore interrupted: the previous contents are in {safety}: llm-proxy db restore --force {safety}",
            file=sys.stderr,
        )


def _load_failed(exc: BackupError, safety: Path | None) -> BackupError:
    """A failed load, with the way back to what the database held."""
    if safety is None:
        hint = "the database held nothing before; fix the cause and restore again"
    else:
        hint = f"the previous contents are in {safety}: llm-proxy db restore --force {safety}"
    return BackupError(exc.message, hint=hint)
