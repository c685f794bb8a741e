"""The one safe path for changing the schema: lock, re-read, back up, run, explain failure.

Every schema change (``migrate up``/``down``, ``setup``, startup auto-upgrade) goes
through :func:`guarded_run`:

1. open the migrating connection and take the migration lock (on that very connection for
   PostgreSQL);
2. re-read the current revision under the lock (another replica may have done the work) and
   refuse a revision this code does not know (a newer release wrote it);
   Applied revisions whose file changed since release are reported (``checksum_warnings``;
   an error in strict mode, see :mod:`llm_proxy_db.migration.manifest`); the caller's ``check`` runs
   (adoption refuses an unversioned database of unknown shape here, before any backup);
3. if something is pending on SQLite, refuse a database that already breaks its foreign keys
   (``PRAGMA foreign_key_check``): no revision, stamp or backup is blamed for old orphans;
4. a downgrade that would lose data (:mod:`llm_proxy_db.safety.data_loss`) is refused with the list
   of losses unless the caller said ``allow_data_loss``;
5. if something is pending, back the SQLite file up (``quick_check``ed copy); no backup, no
   migration, unless the caller said ``no_backup``.  An allowed lossy downgrade on
   PostgreSQL is preceded by a ``pg_dump``;
6. run the revisions, each in its own transaction; a failure names the failed revision, the
   revision the database is at, and the backup file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import DataLossError, MigrationError, SchemaMismatchError
from llm_proxy_db.migration import manifest, revisions, run_log
from llm_proxy_db.migration.executor import Progress, ProgressEvent, RunResult, plan, run
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.safety import data_loss
from llm_proxy_db.safety.backup import keep_backups, needs_backup, take_backup
from llm_proxy_db.safety.locking import lock_timeout, migration_lock

TargetFor = Callable[[str | None], str | None]
# Run under the lock before any backup, with the target: may refuse (raise) without cost.
Check = Callable[[Connection, str | None], None]
# What moves the locked connection to the target; executor.run by default.  Adoption of an
# unversioned database plugs in here, so it gets the same lock and backup.
Runner = Callable[[Connection, str | None], RunResult]


@dataclass(frozen=True)
class SafetyOptions:
    """How a schema change protects the data: backups and the migration lock's timeout.

    ``None`` values fall back to the environment (``LLM_PROXY_BACKUP_DIR``,
    ``LLM_PROXY_KEEP_BACKUPS``, ``LLM_PROXY_LOCK_TIMEOUT``) and then to the defaults
    (next to the database, 5 backups, 300 s).
    """

    backup_dir: str | os.PathLike[str] | None = None
    keep_backups: int | None = None
    no_backup: bool = False
    lock_timeout: float | None = None
    allow_data_loss: bool = False


@dataclass
class MigrationOutcome(RunResult):
    """A :class:`RunResult` plus the backup taken before it and the time spent waiting."""

    backup: Path | None = None
    lock_wait: float = 0.0


def guarded_run(
    settings: Settings,
    target_for: TargetFor,
    *,
    options: SafetyOptions | None = None,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    runner: Runner | None = None,
    check: Check | None = None,
    connection: Connection | None = None,
) -> MigrationOutcome:
    """Move the database to ``target_for(current revision read under the lock)``, safely.

    ``runner(connection, target)`` does the moving (default: :func:`executor.run` with
    ``progress`` and ``version_locations``); it runs after the lock and the backup.
    ``check(connection, target)``, when something is to be done, runs under the lock before
    anything else (an adoption's refusal).  ``connection``: an open connection to use (its
    transaction ended) instead of opening one; the caller closes it.
    """
    options = options or SafetyOptions()
    keep_backups(options.keep_backups)  # bad options fail before anything is touched
    timeout = lock_timeout(options.lock_timeout)
    scripts = revisions.script_directory(tuple(version_locations))
    opened: AbstractContextManager[Connection] = (
        nullcontext(connection) if connection is not None else connect(settings, foreign_keys=False)
    )
    with opened as connection, migration_lock(
        settings, connection, timeout=timeout, progress=progress
    ) as waited:
        current = reread_revision(connection, scripts)
        target = target_for(current)
        warnings = manifest.check_applied(current)  # raises in strict mode
        steps = plan(current, target, scripts)
        if not steps:
            return MigrationOutcome(current, current, checksum_warnings=warnings, lock_wait=waited)
        if check is not None:
            check(connection, target)
        reverted = [revision for revision, _reached, direction in steps if direction == "downgrade"]
        if reverted:
            refuse_downgrade_below_a_partial_upgrade(connection, current, scripts)
        refuse_data_loss(connection, reverted, options.allow_data_loss)
        if dialect_for(settings).FOREIGN_KEYS_OFF_WHILE_MIGRATING:
            refuse_broken_references(connection)
        backup_file = _backup(settings, current, options, progress, lossy=bool(reverted))
        if runner is None:
            runner = functools.partial(run, progress=progress, version_locations=version_locations)
        with run_log.backup_file(backup_file):
            result = _run(runner, connection, target, backup_file, current)
    return MigrationOutcome(
        result.before, result.after, result.steps, warnings, result.adopted, backup=backup_file,
        lock_wait=waited,
    )


def refuse_downgrade_below_a_partial_upgrade(
    connection: Connection, current: str | None, scripts: ScriptDirectory
) -> None:
    """Refuse a downgrade while the revision above ``current`` is partly in the database (a run
    stopped between its committed steps): reverting below it would leave those steps behind,
    under a version that does not have them.  Finishing the upgrade first is always safe."""
    above = revisions.between(current, scripts.get_current_head(), scripts)
    partly = revisions.partly_applied(connection, above[0]) if above else None
    connection.commit()
    if partly:
        raise SchemaMismatchError(
            f"cannot downgrade from {current or 'base'}: {partly}",
            hint=f"finish it first with `llm-proxy migrate up --to {above[0]}` (or `llm-proxy setup`), "
            "then downgrade; nothing was changed",
        )


def reread_revision(connection: Connection, scripts: ScriptDirectory | None = None) -> str | None:
    """The current revision, read in a fresh transaction; refuses one this code does not know."""
    connection.commit()
    current = current_revision(connection)
    connection.commit()
    revisions.position(current, scripts)
    return current


def refuse_data_loss(connection: Connection, reverted: Sequence[str], allowed: bool) -> None:
    """Raise :class:`DataLossError` listing what reverting ``reverted`` would lose.

    Nothing is counted for an upgrade or when ``allowed``; the count runs in its own
    read-only transaction under the migration lock, so it is what the downgrade would see.
    """
    if not reverted or allowed:
        return
    connection.commit()
    found = data_loss.losses(connection, reverted)
    connection.rollback()
    if not found:
        return
    lines = "\n".join(f"  - {loss.describe()}" for loss in found)
    raise DataLossError(
        f"the downgrade would lose data; nothing was changed:\n{lines}",
        losses=tuple(found),
        hint="export what you need first, then run again with --allow-data-loss (a backup is "
        "taken first unless --no-backup)",
    )


def refuse_broken_references(connection: Connection) -> None:
    """Raise :class:`SchemaMismatchError` when the SQLite database has foreign key violations.

    Run before anything is written, so rows that were orphaned before this tool came are not
    blamed on the next revision (which checks its own work) nor stamped over.
    """
    connection.commit()
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.rollback()
    if not problems:
        return
    sample = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in problems[:5])
    more = ", ..." if len(problems) > 5 else ""
    raise SchemaMismatchError(
        f"the database already has {len(problems)} foreign key violation(s) ({sample}{more}): "
        "fix or delete those rows first; nothing was changed",
        hint="list them with `sqlite3 FILE 'PRAGMA foreign_key_check'`",
    )


def _backup(
    settings: Settings,
    current: str | None,
    options: SafetyOptions,
    progress: Progress | None,
    *,
    lossy: bool,
) -> Path | None:
    """The dialect's backup before a change: SQLite's checked copy before every change (of a
    file holding something); a server's dump (``pg_dump``, ``mariadb-dump``) only before a
    downgrade allowed to lose data."""
    if options.no_backup:
        return None
    wanted = dialect_for(settings).BACKUP_BEFORE_EVERY_CHANGE or (lossy and options.allow_data_loss)
    if not wanted or not needs_backup(settings):
        return None
    path = take_backup(settings, current, backup_dir=options.backup_dir, keep=options.keep_backups)
    if progress is not None:
        progress(ProgressEvent("backup_done", current or "base", "", 0.0, str(path)))
    return path


def _run(
    runner: Runner, connection: Connection, target: str | None, backup_file: Path | None, before: str | None
) -> RunResult:
    try:
        return runner(connection, target)
    except MigrationError as exc:
        if backup_file is None:
            raise
        unchanged = exc.current_revision == before
        restore_hint = (
            f"nothing was changed (the database is still at revision {before or 'base'})"
            if unchanged
            else f"if you need the pre-run state: llm-proxy db restore {backup_file}"
        )
        raise MigrationError(
            f"{exc.message}; the backup taken before migrating is {backup_file}",
            failed_revision=exc.failed_revision,
            current_revision=exc.current_revision,
            backup_file=str(backup_file),
            hint=exc.hint or restore_hint,
        ) from exc
