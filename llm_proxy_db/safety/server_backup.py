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
   meanwhile), a database holding any object of any kind (``schema_objects``: a lone
   sequence, routine, type or event counts) is refused (exit 8) unless ``force``; with it,
   the current contents are dumped first (``*.pre-restore.<suffix>`` in the backup
   directory), then dropped;
3. the dump is loaded into the empty database (which must then hold ``projects`` and
   ``tokens``) and the restore recorded in the run log; a signal meanwhile prints where the
   safety dump is (the client tool is killed as the exception passes).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import server_dialect_for, unfinished
from llm_proxy_db.dialects.base import REQUIRED_TABLES, DumpInfo, ServerDialect
from llm_proxy_db.dialects.client_tools import find_tool
from llm_proxy_db.errors import MISSING_BACKUP_HINT, BackupError, Interrupted, UnknownRevisionError, signal_of
from llm_proxy_db.events import Progress
from llm_proxy_db.files import remove_leftovers
from llm_proxy_db.migration import revisions, run_log, unfinished_runs
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.safety import backup_names
from llm_proxy_db.safety.backup_result import RestoreResult
from llm_proxy_db.safety.locking import migration_lock


def dump_prefix(settings: Settings) -> str:
    """``<database>.<identity>``: the start of every automatic dump name of this database; the
    identity digests driver, host, port and database name (never the user or password), so
    databases of the same name on two servers never rotate each other's dumps."""
    url = settings.sqlalchemy_url()
    where = f"{settings.driver}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    query = url.query.get("unix_socket") or url.query.get("host") or ""
    return f"{url.database}.{backup_names.digest(where + str(query))}"


def dump_path(directory: Path, settings: Settings, revision: str | None, suffix: str) -> Path:
    """``<database>.<identity>.<UTC time>.<revision>.<suffix>`` in ``directory``, the name of
    an automatic dump (:mod:`llm_proxy_db.safety.backup_names`)."""
    return backup_names.free_name(directory, dump_prefix(settings), revision, suffix)


def backup(settings: Settings, out: Path | None, directory: Path, keep: int) -> Path:
    """A dump now: to ``out`` (a file that must not exist, or a directory; never rotated),
    else into ``directory`` under the automatic name, rotated like SQLite's backups.  A
    database whose restore did not finish is refused (exit 8): it holds part of a dump's rows."""
    dialect = server_dialect_for(settings)
    revision = read_revision(settings)
    if out is None:
        return _rotated_dump(settings, revision, directory, keep)
    if out.is_dir() or str(out).endswith(os.sep):
        out = dump_path(out, settings, revision, dialect.backup_suffix())
    return dialect.dump(settings, out)


def take_backup(settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
    """A dump into ``directory`` under the automatic name; then the oldest automatic dumps of
    this database beyond ``keep`` are deleted (the one just taken never is).  Refused, like
    :func:`backup`, while a restore is unfinished."""
    read_revision(settings)
    return _rotated_dump(settings, revision, directory, keep)


def _rotated_dump(settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
    dialect = server_dialect_for(settings)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_leftovers(directory)
    suffix = dialect.backup_suffix()
    target = dialect.dump(settings, dump_path(directory, settings, revision, suffix))
    backup_names.prune(directory, dump_prefix(settings), keep, protect=target, suffix=suffix)
    return target


def read_revision(settings: Settings) -> str | None:
    """The database's current revision (a missing or unreachable database is an error; one
    whose restore did not finish is refused: nothing may take a copy of it for a good one)."""
    with connect(settings, create=False) as connection:
        unfinished_runs.refuse_backup(connection, settings.describe())
        return current_revision(connection)


def checked_dump(dialect: ServerDialect, source: Path) -> DumpInfo:
    """Step 1: ``source`` read by the dialect, holding our tables at a revision we know."""
    if not source.exists():
        raise BackupError(f"backup file {source} does not exist", hint=MISSING_BACKUP_HINT)
    if not source.is_file() or source.stat().st_size == 0:
        raise BackupError(
            f"{source} is not a {dialect.DUMP_DESCRIPTION}",
            hint="restore a dump `llm-proxy-db db backup` wrote; the database was not touched",
        )
    info = dialect.inspect_dump(source)
    missing = [name for name in REQUIRED_TABLES if name not in info.tables]
    if missing:
        raise BackupError(
            f"{source} does not hold an llm-proxy database (no {', '.join(missing)} table)",
            hint="restore a backup this tool took; the database was not touched",
        )
    revisions.position(info.revision)  # a dump written by a newer release is refused
    for kind, subject in info.unfinished:
        if kind == unfinished.RESTORE:  # a dump of part of a dump's rows (taken by hand, or a safety dump)
            raise BackupError(
                f"{source} was taken of a database whose restore of {subject} had not finished: it "
                "holds part of that dump's rows; refusing to restore it",
                hint=f"restore a complete backup (such as {subject}); the database was not touched",
            )
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
        connection.rollback()
        replaced = run_log.ReplacedDatabase.read(connection)
        connection.rollback()
        previous = unfinished.read(connection)  # a restore that did not finish: its rows are not a copy
        connection.rollback()
        cut_short = next((entry.subject for entry in previous if entry.kind == unfinished.RESTORE), None)
        safety = _replaceable(dialect, settings, connection, directory, force, partial=cut_short is not None)
        before = unfinished_runs.replaced_by(previous) if cut_short else (str(safety) if safety else None)
        way_back = _way_back(source, safety, cut_short, before)
        marked = not dialect.TRANSACTIONAL_DDL  # the load commits statement by statement
        if marked:  # any later process sees a load that did not end (dialects.unfinished)
            carried = [entry for entry in info.unfinished if entry[0] == unfinished.DOWNGRADE]  # the dump's own
            unfinished.replace_all(connection, [
                (unfinished.RESTORE, str(source.resolve())),
                *([(unfinished.REPLACED, before)] if before else []),
                *carried,
            ])
        try:
            if safety is not None and not getattr(dialect, "LOAD_REPLACES", False):
                dialect.drop_everything(connection)  # else the dialect's load drops, in its own transaction
            dialect.load_dump(settings, source)
        except BackupError as exc:
            raise BackupError(exc.message, hint=way_back) from None
        except (KeyboardInterrupt, SystemExit) as exc:  # SIGINT, SIGTERM (the CLI's handler)
            signal = signal_of(exc)
            if signal is None:
                raise
            raise Interrupted(f"the restore of {source} was interrupted", signal=signal, hint=way_back) from None
        connection.rollback()  # see what the load committed
        _check_loaded(connection, way_back)
        if marked:
            unfinished.clear(connection, unfinished.RESTORE, unfinished.REPLACED)
        revision = current_revision(connection)
        run_log.record_restore(
            connection, replaced, revision, started,
            source=str(source.resolve()), safety_copy=str(safety) if safety else None,
        )
        connection.commit()
    return RestoreResult(settings.describe(), source, revision, safety, origin=info.database)


def _replaceable(
    dialect: ServerDialect, settings: Settings, connection: Connection, directory: Path, force: bool,
    *, partial: bool = False,
) -> Path | None:
    """Step 2: None for an empty database; with ``force`` the safety dump of a non-empty one
    (the caller then empties it; ``partial``: the database holds a restore that did not finish,
    its dump is named ``*.pre-restore.partial.*`` and is never offered as a copy to go back to;
    restoring it is refused, see :func:`checked_dump`); otherwise the refusal."""
    connection.rollback()
    # every kind: a lone sequence or routine counts; our own marker of an unfinished restore does not
    found = [o for o in dialect.schema_objects(connection) if o.split()[-1] != unfinished.UNFINISHED_TABLE]
    connection.rollback()
    if not found:
        return None
    if not force:
        shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        raise BackupError(
            f"{settings.describe()} is not empty ({len(found)} objects: {shown}); refusing to "
            "restore over it",
            hint="pass --force to replace its contents (they are dumped first; stop the service: "
            "its writes after that dump are not kept); the database was not touched",
        )
    revision = current_revision(connection)
    connection.rollback()
    _warn_if_unknown(settings, revision)
    directory.mkdir(parents=True, exist_ok=True)
    kind = "pre-restore.partial" if partial else "pre-restore"
    return dialect.dump(settings, dump_path(directory, settings, revision, f"{kind}.{dialect.backup_suffix()}"))


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


def _check_loaded(connection: Connection, way_back: str) -> None:
    """After the load: our tables are in the target database, else the restore failed."""
    tables = set(sa.inspect(connection).get_table_names())
    missing = [name for name in REQUIRED_TABLES if name not in tables]
    if missing:
        raise BackupError(f"the load left no {', '.join(missing)} table in the database; the restore failed",
                          hint=way_back)


def _way_back(source: Path, safety: Path | None, cut_short: str | None, before: str | None) -> str:
    """What to do when the load fails or is stopped by a signal (the client tool is killed by
    :mod:`~llm_proxy_db.dialects.client_tools` as the exception passes): the copy of what the
    database held, never the dump of a restore that had not finished."""
    redo = f"llm-proxy-db db restore --force {source}"
    if cut_short is None:
        if safety is None:
            return f"the database held nothing before; fix the cause and restore again: {redo}"
        return f"the previous contents are in {safety}: llm-proxy-db db restore --force {safety}"
    partial = f" (kept in {safety}, which is not a backup)" if safety else ""
    earlier = (
        f"what it held before that restore is in {before}: llm-proxy-db db restore --force {before}"
        if before else "it held nothing before that restore"
    )
    return (
        f"the database held the unfinished restore of {cut_short}, part of its rows{partial}; "
        f"{earlier}; or restore again: {redo}"
    )
