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
from llm_proxy_db.adoption import live_drift
from llm_proxy_db.adoption.adopt import AdoptionResult
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import (
    ConfigError,
    LLMProxyDBError,
    LockTimeoutError,
    SchemaMismatchError,
)
from llm_proxy_db.failures import bounded_lock_waits
from llm_proxy_db.migration import adoption_record, manifest, revisions, run_log, unfinished_runs
from llm_proxy_db.migration.executor import Progress, RunResult
from llm_proxy_db.migration.results import StepTiming
from llm_proxy_db.migration.revision_info import RevisionState
from llm_proxy_db.safety import dry_run
from llm_proxy_db.safety.guard import MigrationOutcome, SafetyOptions, guarded_run
from llm_proxy_db.safety.topology import writable_settings
from llm_proxy_db.service import token_ids
from llm_proxy_db.startup import StartupResult, auto_upgrade
from llm_proxy_db.status import Status, status_at_head, with_topology

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
        return with_topology(status_at_head(settings.describe(), *at_head), settings)
    current: str | None = None
    detected: str | None = "empty"
    stamp: str | None = None  # what setup would stamp an unversioned database at
    adopted: dict[str, Any] | None = None
    missing_ids = empty_ids = 0
    partly: str | None = None
    unfinished: list[str] = []
    if not settings.known_missing():
        with connect(settings, create=False) as connection:
            current = current_revision(connection)
            detected, stamp = _detected_state(connection)
            record = adoption_record.latest(connection)
            adopted = record.as_dict() if record else None
            missing_ids = token_ids.count_missing(connection)
            empty_ids = token_ids.count_empty(connection)
            partly = _partly_applied(connection, current or stamp, detected)
            unfinished = unfinished_runs.describe(connection)
            if unfinished and current is None:  # a restore cut short: not a state to adopt
                detected, stamp = "unfinished restore", None
    revisions.position(current)  # refuses a revision written by a newer release
    return with_topology(Status(
        database=settings.describe(),
        current_revision=current,
        head_revision=revisions.head_revision(),
        pending=revisions.between(current or stamp, revisions.head_revision()),
        checksum_warnings=manifest.check_applied(current),
        detected_state=detected,
        adopted_from=adopted,
        tokens_without_id=missing_ids,
        tokens_with_empty_id=empty_ids,
        partly_applied=partly,
        unfinished=unfinished,
    ), settings)


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
    except (SchemaMismatchError, LockTimeoutError) as exc:
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
        raise ConfigError("--limit must be at least 1", hint="e.g. --limit 20, or leave it out for every run")
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
    with bounded_lock_waits(lock_timeout):
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
        raise ConfigError(
            "downgrade needs exactly one of a target revision or a number of steps",
            hint="pass target=REV (or base) or steps=N, not both",
        )
    settings = writable_settings(settings)
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout, allow_data_loss)
    with bounded_lock_waits(lock_timeout):
        return _downgrade(settings, target, steps, progress, version_locations, safety)


def _downgrade(
    settings: Settings,
    target: str | None,
    steps: int | None,
    progress: Progress | None,
    version_locations: Sequence[str],
    safety: SafetyOptions,
) -> MigrationOutcome:
    if steps is not None:
        if steps < 1:
            raise ConfigError("--steps must be at least 1", hint="e.g. --steps 1 reverts the newest revision")
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
    With ``dry_run`` only the plan is computed.  A missing SQLite file is refused
    (:class:`ConfigError`, with or without ``dry_run``): adopting builds nothing, and it is not created.
    """
    if settings.known_missing():  # refusals come before the file is created
        missing = adoption.plan_for_missing_database(target)  # an unknown --to: exit 5
        if force_stamp:
            adoption.refuse_force_stamp(missing.detection, None)
        raise ConfigError(
            f"{settings.describe()} does not exist: there is no database to adopt",
            hint="check the path (--database-path, DATABASE_PATH); to create a new database run "
            "`llm-proxy-db setup`; nothing was created",
        )
    if not dry_run:
        settings = writable_settings(settings)
    with bounded_lock_waits(lock_timeout):
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
    with bounded_lock_waits(lock_timeout):
        return auto_upgrade(settings, enabled=enabled, options=safety, progress=progress)


def upgrade_plan(
    settings: Settings,
    target: str = revisions.HEAD,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    no_backup: bool = False,
) -> dry_run.UpgradePlan:
    """What ``upgrade`` would do (``migrate up --dry-run``): each pending revision with what it
    locks, for how long it is expected to, the rows it rewrites, and the backup taken first.
    Changes nothing: no file, no lock file, no table (:mod:`llm_proxy_db.safety.dry_run`).
    Refused (exit 6) as the upgrade would be while a restore or a downgrade has not finished."""
    target_id = revisions.resolve(target)
    where = status(settings)
    if where.unfinished:  # refused as the upgrade itself would be, saying how to finish the operation
        with connect(settings, create=False) as connection:
            unfinished_runs.refuse_reading(connection, "plan an upgrade")
    start = where.current_revision
    if revisions.position(target_id) < revisions.position(start):
        raise ConfigError(
            f"target {target} is below the current revision {start}", hint="use migrate down instead"
        )
    pending = [rev for rev in where.pending if revisions.position(rev) <= revisions.position(target_id)]
    note = None
    if settings.known_missing():
        note = "the database does not exist yet: it is created, then every revision runs"
    elif start is None and where.detected_state not in (None, "empty"):
        note = f"unversioned, detected {where.detected_state}: adopted (stamped) first"
    return dry_run.plan_upgrade(
        settings, start, pending, target_id, backup_dir=backup_dir, no_backup=no_backup, note=note,
    )


def offline_start(settings: Settings) -> tuple[str | None, str]:
    """Where ``migrate up --sql`` without ``--from`` starts: the database's current revision
    when it can be read, else base; and a sentence saying which (for stderr).  Reads only: a
    missing SQLite file is not created.  Refused (exit 6) while a restore or a downgrade that
    commits as it goes has not finished (:mod:`llm_proxy_db.migration.unfinished_runs`)."""
    if settings.known_missing():
        return None, f"-- {settings.describe()} does not exist yet: the script starts at base"
    try:
        with connect(settings, create=False) as connection:
            current = current_revision(connection)
            refusal = unfinished_runs.reading_refusal(connection, "start the script at the recorded revision")
    except Exception as exc:  # noqa: BLE001 - unreadable is an answer here, not a failure
        reason = exc.message if isinstance(exc, LLMProxyDBError) else type(exc).__name__
        return None, f"-- cannot read the current revision ({reason}): the script starts at base (use --from REV)"
    if refusal is not None:  # a restore or a downgrade left part-way (MySQL): the recorded revision is not the schema's
        raise SchemaMismatchError(refusal.message, hint=f"{refusal.hint}; or name the start yourself with --from REV")
    revisions.position(current)  # a revision of a newer release is refused
    if current is None:
        return None, "-- the database has no revision recorded: the script starts at base (use --from REV)"
    return current, f"-- the database is at revision {current}: the script starts there (use --from REV to choose)"


def stamp(
    settings: Settings,
    target: str,
    *,
    progress: Progress | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
    keep_backups: int | None = None,
    no_backup: bool = False,
    lock_timeout: float | None = None,
) -> MigrationOutcome:
    """Record ``target`` as the database's revision without running any revision (``alembic stamp``).

    The schema is not touched, so no data can be lost; the rest of the safety net holds: the
    migration lock, the refusal of a revision written by a newer release, a SQLite backup
    first, ``goose_db_version`` in step, and a ``stamp`` row in the run log.
    """
    target_id = revisions.resolve(target)
    safety = SafetyOptions(backup_dir, keep_backups, no_backup, lock_timeout)

    def runner(connection: Any, reached: str | None) -> RunResult:
        before = current_revision(connection)
        connection.commit()
        started = run_log.now()
        command.stamp(make_config(connection=connection), reached or revisions.BASE)
        run_log.write(connection, run_log.Entry("stamp", reached, before, reached, started, run_log.now()))
        connection.commit()
        return RunResult(before, reached, [StepTiming(reached or revisions.BASE, "stamp", 0.0)])

    return guarded_run(
        settings, lambda _current: target_id, options=safety, progress=progress, runner=runner,
        moves_data=False,
    )


def drift(settings: Settings, against: Settings | None = None, *, strict: bool = False) -> live_drift.DriftReport:
    """Compare the database with the schema its recorded revision should have, or with the
    database of ``against`` (staging and production; any two dialects, compared logically).

    Reads only.  The report lists each difference with its origin (``drift``, an operator's
    addition, a later service release's artefact) and the statements that would reconcile the
    drift in this database's SQL; ``report.drift`` is True when something must be reconciled
    (with ``strict``, when anything differs at all).  See :mod:`llm_proxy_db.adoption.live_drift`.
    """
    return live_drift.check(settings, against, strict=strict)


def upgrade_sql(settings: Settings, target: str = revisions.HEAD, start: str | None = None) -> str:
    """The SQL an upgrade from ``start`` (default base) to ``target`` would run, for the dialect."""
    start_id = revisions.resolve(start) if start else None
    end_id = revisions.resolve(target)
    if revisions.position(end_id) < revisions.position(start_id):
        raise ConfigError(f"{target} is below {start}", hint="use migrate down --sql --to REV")
    spec = f"{start_id}:{end_id}" if start_id else str(end_id)
    script = _offline(settings, lambda config: command.upgrade(config, spec, sql=True))
    if start_id is None:  # the script creates the database: as the service runs it (SQLite: WAL)
        script = dialect_for(settings).OFFLINE_CREATE_PREAMBLE + script
    return script


def downgrade_sql(settings: Settings, target: str, start: str = revisions.HEAD) -> str:
    """The SQL a downgrade from ``start`` (default head) to ``target`` would run."""
    start_id = revisions.resolve(start)
    end_id = revisions.resolve(target)
    if start_id is None or revisions.position(end_id) > revisions.position(start_id):
        raise ConfigError(f"{target} is not below {start}", hint="use migrate up --sql --to REV")
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
    settings = writable_settings(settings)
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

    if direction == "downgrade":
        return guarded_run(
            settings, checked_target, options=safety, progress=progress, version_locations=version_locations,
        )
    # An unversioned database is checked before the lock (and again under it), then adopted,
    # all on one connection; a file created meanwhile by the service (SQLite) is adopted too.
    runner = adoption.GuardedAdoption(progress=progress, version_locations=version_locations)
    if settings.known_missing():
        return guarded_run(
            settings, checked_target, options=safety, progress=progress, version_locations=version_locations,
            runner=runner, check=runner.check,
        )
    with connect(settings, foreign_keys=False, create=False) as connection:
        runner.precheck(connection, target_id)
        return guarded_run(
            settings, checked_target, options=safety, progress=progress, version_locations=version_locations,
            runner=runner, check=runner.check, connection=connection,
        )


def _steps_below(current: str | None, steps: int) -> str:
    depth = revisions.position(current)
    if steps > depth:
        raise ConfigError(
            f"cannot go down {steps} step(s): the database is only {depth} revision(s) above base",
            hint=f"use --steps {depth} or less (or --to base); nothing was changed" if depth
            else "the database is at base already; nothing was changed",
        )
    return revisions.BASE if steps == depth else revisions.ids()[depth - steps - 1]


def _offline(settings: Settings, call: Any) -> str:
    buffer = io.StringIO()
    config = make_config(settings)
    config.output_buffer = buffer
    call(config)
    return buffer.getvalue()

