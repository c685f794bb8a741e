"""The library API: one plain function per verb.  Each returns data and never prints.

A Python service (or a test) calls these directly; the ``llm-proxy-db`` CLI is a thin layer
that parses options, calls one of them, and renders the result.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

from alembic import command
from llm_proxy_db import quick_status
from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.adoption.adopt import AdoptionResult
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, SchemaMismatchError, UnknownRevisionError
from llm_proxy_db.migration import adoption_record, manifest, revisions, run_log
from llm_proxy_db.migration.executor import Progress, RunResult
from llm_proxy_db.migration.revision_info import RevisionState
from llm_proxy_db.safety.guard import MigrationOutcome, SafetyOptions, guarded_run
from llm_proxy_db.service import token_ids
from llm_proxy_db.startup import StartupResult, auto_upgrade
from llm_proxy_db.status import Status, status_at_head

__all__ = ["Status"]  # defined in llm_proxy_db.status, which the fast startup path imports alone
from llm_proxy_db.migration.version_table import current_revision, has_version_table


def status(settings: Settings) -> Status:
    """Current revision, head and pending revisions.  Never creates or changes anything.

    For a database without ``alembic_version``, ``detected_state`` names the known state it
    is in (``empty``, ``unknown``, or a state such as ``0002`` or ``goose-1``); for an
    adopted one, ``adopted_from`` says from which state and when.  A database at head that
    was never adopted is answered by one driver read (:mod:`llm_proxy_db.quick_status`).
    """
    at_head = quick_status.current_head(settings)
    if at_head is not None:
        return status_at_head(settings.describe(), *at_head)
    current: str | None = None
    detected: str | None = "empty"
    stamp: str | None = None  # what setup would stamp an unversioned database at
    adopted: dict[str, Any] | None = None
    missing_ids = 0
    partly: str | None = None
    if not settings.known_missing():
        with connect(settings, create=False) as connection:
            current = current_revision(connection)
            detected, stamp = _detected_state(connection)
            record = adoption_record.latest(connection)
            adopted = record.as_dict() if record else None
            missing_ids = token_ids.count_missing(connection)
            partly = _partly_applied(connection, current or stamp, detected)
    revisions.position(current)  # refuses a revision written by a newer release
    return Status(
        database=settings.describe(),
        current_revision=current,
        head_revision=revisions.head_revision(),
        pending=revisions.between(current or stamp, revisions.head_revision()),
        checksum_warnings=manifest.check_applied(current),
        detected_state=detected,
        adopted_from=adopted,
        tokens_without_id=missing_ids,
        partly_applied=partly,
    )


def _partly_applied(connection: Any, current: str | None, detected: str | None) -> str | None:
    """How far the next revision got when a run stopped half-way through it (MySQL, whose DDL
    is not transactional; PostgreSQL revisions that commit steps on their own)."""
    pending = revisions.between(current, revisions.head_revision())
    if not pending or detected not in (None, "empty"):
        return None
    return revisions.partly_applied(connection, pending[0])


def _detected_state(connection: Any) -> tuple[str | None, str | None]:
    """The known state of an unversioned database (None once it is versioned), and the
    revision adopting it would stamp (None unless it is a known state).

    On PostgreSQL the known states are derived in a scratch schema inside a transaction that
    is always rolled back, so the database is left exactly as it was.
    """
    if has_version_table(connection):
        return None, None
    try:
        detection = adoption.detect(connection)
    except SchemaMismatchError as exc:
        return f"undetermined: {exc.message}", None
    return detection.state_name, detection.state.revision if detection.state else None


def history(settings: Settings | None = None) -> list[RevisionState]:
    """Every revision, oldest first; with ``settings``, whether and when each was applied.

    ``applied`` follows the database's current revision; ``applied_at`` comes from the run
    log (:mod:`llm_proxy_db.migration.run_log`).  A missing SQLite file is not created: its
    revisions are simply not applied.  Nothing is written.
    """
    chain = revisions.chain()
    if settings is None:
        return [RevisionState(info.id, info.down_revision, info.description) for info in chain]
    current, when = None, {}
    if not settings.known_missing():
        with connect(settings, create=False) as connection:
            current = current_revision(connection)
            when = run_log.applied_at(run_log.entries(connection))
    depth = revisions.position(current)
    return [
        RevisionState(
            info.id, info.down_revision, info.description, applied=index < depth,
            applied_at=when.get(info.id) if index < depth else None,
        )
        for index, info in enumerate(chain)
    ]


def log(settings: Settings, limit: int | None = None) -> list[run_log.Entry]:
    """The runs this tool recorded on the database, oldest first (the newest ``limit``).

    Reads only: a database without a run log (or a missing SQLite file) has no entries.
    """
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    if settings.known_missing():
        return []
    with connect(settings, create=False) as connection:
        return run_log.entries(connection, limit)


def upgrade(
    settings: Settings,
    target: str = revisions.HEAD,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    backup_dir: str | os.PathLike[str] | None = None,
    keep_backups: int | None = None,
    no_backup: bool = False,
    lock_timeout: float | None = None,
) -> MigrationOutcome:
    """Apply revisions up to ``target`` (default head), each in its own transaction.

    Runs under the migration lock, after a checked backup of a SQLite file (see
    :mod:`llm_proxy_db.safety.guard`); the result names the backup taken, if any.
    """
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout)
    return _migrate(settings, target, "upgrade", progress, version_locations, safety)


def downgrade(
    settings: Settings,
    target: str | None = None,
    *,
    steps: int | None = None,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    backup_dir: str | os.PathLike[str] | None = None,
    keep_backups: int | None = None,
    no_backup: bool = False,
    lock_timeout: float | None = None,
    allow_data_loss: bool = False,
) -> MigrationOutcome:
    """Revert to ``target`` (a revision or ``base``) or by ``steps`` revisions, safely.

    ``steps`` counts from the revision read under the migration lock.  A downgrade that
    would lose data (:mod:`llm_proxy_db.safety.data_loss`) raises :class:`DataLossError` listing
    the losses, unless ``allow_data_loss``; then PostgreSQL is dumped first (unless
    ``no_backup``), as SQLite always is.
    """
    if (target is None) == (steps is None):
        raise ConfigError("downgrade needs exactly one of a target revision or a number of steps")
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout, allow_data_loss)
    if steps is not None:
        if steps < 1:
            raise ConfigError("--steps must be at least 1")
        return guarded_run(
            settings, lambda current: revisions.resolve(_steps_below(current, steps)), options=safety,
            progress=progress, version_locations=version_locations,
        )
    assert target is not None
    return _migrate(settings, target, "downgrade", progress, version_locations, safety)


def adopt(
    settings: Settings,
    target: str = revisions.HEAD,
    *,
    dry_run: bool = False,
    force_stamp: str | None = None,
    progress: Progress | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
    keep_backups: int | None = None,
    no_backup: bool = False,
    lock_timeout: float | None = None,
) -> AdoptionResult:
    """Adopt an unversioned database: verify its schema, stamp its revision, migrate to target.

    A database that matches no known state is left untouched (SchemaMismatchError), before
    any lock or backup.  Otherwise the stamp and the migration run on the guarded path (the
    migration lock, a checked SQLite backup), and the plan is made again under the lock.
    With ``dry_run`` only the plan is computed; a missing SQLite file is not created.
    """
    if settings.known_missing() and dry_run:
        return adoption.AdoptionResult(adoption.plan_for_missing_database(target))
    with connect(settings, foreign_keys=False) as connection:
        planned = adoption.adopt(connection, target, dry_run=True, force_stamp=force_stamp)
    if dry_run:
        return planned
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout)
    return _guarded_adopt(settings, planned, force_stamp, progress, safety)


def _guarded_adopt(
    settings: Settings,
    planned: AdoptionResult,
    force_stamp: str | None,
    progress: Progress | None,
    safety: SafetyOptions,
) -> AdoptionResult:
    done: list[AdoptionResult] = []

    def runner(connection: Any, target: str | None) -> RunResult:
        result = adoption.adopt(
            connection, target or revisions.BASE, force_stamp=force_stamp, progress=progress
        )
        done.append(result)
        assert result.run is not None
        return result.run

    outcome = guarded_run(
        settings, lambda _current: planned.plan.target, options=safety, progress=progress,
        runner=runner,
    )
    result = done[0] if done else planned
    result.run = outcome
    return result


def setup(
    settings: Settings,
    *,
    progress: Progress | None = None,
    enabled: bool | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
    keep_backups: int | None = None,
    no_backup: bool = False,
    lock_timeout: float | None = None,
) -> StartupResult:
    """Create the SQLite data directory if needed and bring the database to head.

    The startup path (:func:`llm_proxy_db.startup.auto_upgrade`): one cheap read when already
    at head; honours ``LLM_PROXY_AUTO_MIGRATE`` unless ``enabled`` is given.
    """
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout)
    return auto_upgrade(settings, enabled=enabled, options=safety, progress=progress)


def upgrade_sql(settings: Settings, target: str = revisions.HEAD, start: str | None = None) -> str:
    """The SQL an upgrade from ``start`` (default base) to ``target`` would run, for the dialect."""
    start_id = revisions.resolve(start) if start else None
    end_id = revisions.resolve(target)
    if revisions.position(end_id) < revisions.position(start_id):
        raise ConfigError(f"{target} is below {start}: use migrate down --sql")
    spec = f"{start_id}:{end_id}" if start_id else str(end_id)
    return _offline(settings, lambda config: command.upgrade(config, spec, sql=True))


def downgrade_sql(settings: Settings, target: str, start: str = revisions.HEAD) -> str:
    """The SQL a downgrade from ``start`` (default head) to ``target`` would run."""
    start_id = revisions.resolve(start)
    end_id = revisions.resolve(target)
    if start_id is None or revisions.position(end_id) > revisions.position(start_id):
        raise ConfigError(f"{target} is not below {start}: use migrate up --sql")
    spec = f"{start_id}:{end_id or 'base'}"
    return _offline(settings, lambda config: command.downgrade(config, spec, sql=True))


def _migrate(
    settings: Settings,
    target: str,
    direction: str,
    progress: Progress | None,
    version_locations: Sequence[str],
    safety: SafetyOptions,
) -> MigrationOutcome:
    scripts = revisions.script_directory(tuple(version_locations))
    target_id = revisions.resolve(target, scripts)

    def checked_target(current: str | None) -> str | None:
        moving_up = revisions.position(target_id, scripts) >= revisions.position(current, scripts)
        if moving_up != (direction == "upgrade") and current != target_id:
            verb = "below" if direction == "upgrade" else "above"
            raise ConfigError(
                f"target {target} is {verb} the current revision {current or 'base'}",
                hint=f"use migrate {'down' if direction == 'upgrade' else 'up'} instead",
            )
        return target_id

    if direction == "downgrade" or settings.known_missing():
        return guarded_run(
            settings, checked_target, options=safety, progress=progress, version_locations=version_locations,
        )
    # An unversioned database is checked before the lock (and again under it), then adopted,
    # all on one connection.
    runner = adoption.GuardedAdoption(progress=progress, version_locations=version_locations)
    with connect(settings, foreign_keys=False, create=False) as connection:
        runner.precheck(connection, target_id)
        return guarded_run(
            settings, checked_target, options=safety, progress=progress, version_locations=version_locations,
            runner=runner, check=runner.check, connection=connection,
        )


def _steps_below(current: str | None, steps: int) -> str:
    depth = revisions.position(current)
    if steps > depth:
        raise UnknownRevisionError(
            f"cannot go down {steps} step(s): the database is only {depth} revision(s) above base"
        )
    return revisions.BASE if steps == depth else revisions.ids()[depth - steps - 1]


def _offline(settings: Settings, call: Any) -> str:
    buffer = io.StringIO()
    config = make_config(settings)
    config.output_buffer = buffer
    call(config)
    return buffer.getvalue()

