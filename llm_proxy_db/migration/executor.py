"""Applying revisions one at a time on one connection, reporting progress through a callback.

One Alembic command per revision keeps each revision in its own transaction and tells us
exactly which one failed.  The executor never prints: it emits :class:`ProgressEvent`
values and the caller (CLI, service, test) decides how to show them.

The result types live in :mod:`llm_proxy_db.migration.results` (plain data: the fast startup
path uses them without loading Alembic); this module imports Alembic and the revision graph.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.dialects import dialect_for, unfinished
from llm_proxy_db.errors import (
    DataLossError,
    LLMProxyDBError,
    MigrationError,
    MigrationInterrupted,
    SchemaAppearedError,
)
from llm_proxy_db.events import Progress, ProgressEvent
from llm_proxy_db.failures import explain_driver_message
from llm_proxy_db.migration import adoption_record, revisions, run_log, unfinished_runs
from llm_proxy_db.migration.downgrade_folds import ALLOW_DATA_LOSS
from llm_proxy_db.migration.pg_online import backoff, is_lock_conflict, lock_retries, stop_on_sigterm
from llm_proxy_db.migration.results import RunResult, StepTiming
from llm_proxy_db.migration.revisions import between, chain, position, script_directory
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.schema.fingerprint import our_tables_present

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

    from llm_proxy_db.dialects.interrupts import Stop
    from llm_proxy_db.migration.run_log import Entry

# Tests set this to act in the gap between the decision "the database is empty" and the first
# revision's transaction (a service creating its schema meanwhile: issue 21, item 8).
before_first_revision_hook: Callable[[], None] | None = None


def plan(
    start: str | None, target: str | None, scripts: ScriptDirectory | None = None
) -> list[tuple[str, str | None, str]]:
    """The steps from ``start`` to ``target``: (revision run, revision reached, direction)."""
    if position(target, scripts) >= position(start, scripts):
        return [(rev, rev, "upgrade") for rev in between(start, target, scripts)]
    parents = {info.id: info.down_revision for info in chain(scripts)}
    downs = reversed(between(target, start, scripts))
    return [(rev, parents[rev], "downgrade") for rev in downs]


def run(
    connection: Connection,
    target: str | None,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    allow_data_loss: bool = False,
) -> RunResult:
    """Move the database on ``connection`` to ``target`` (None = base), one revision at a time.

    ``allow_data_loss``: a downgrade meeting rows the older schema rejects folds them
    (:mod:`~llm_proxy_db.migration.downgrade_folds`) instead of refusing with
    :class:`~llm_proxy_db.errors.DataLossError`."""
    connection.commit()
    start = current_revision(connection)
    connection.commit()
    result = RunResult(before=start, after=start)
    scripts = script_directory(tuple(version_locations))
    steps = plan(start, target, scripts)
    if start is None and steps:  # a record left by a downgrade done by other means is stale
        _forget_adoption(connection)
    with stop_on_sigterm(), dialect_for(connection).interruptible(connection) as stop:
        try:
            _apply(connection, steps, result, progress, (tuple(version_locations), allow_data_loss), stop)
        except MigrationInterrupted:
            raise
        except BaseException as exc:
            if stop.signal is None:
                raise
            raise _interrupted(connection, stop.signal, result, steps) from exc
    if result.steps and result.after is None:
        _forget_adoption(connection)
    return result


def _apply(
    connection: Connection,
    steps: list[tuple[str, str | None, str]],
    result: RunResult,
    progress: Progress | None,
    how: tuple[Sequence[str], bool],
    stop: Stop,
) -> None:
    """Run ``steps`` in order, recording each in ``result``; the first failure raises.

    ``how``: the extra version locations, and whether data loss is allowed.  ``stop``: where
    a signal is recorded; a step it stopped is logged and raised as
    :class:`~llm_proxy_db.errors.MigrationInterrupted`, whatever the driver raised meanwhile.

    From base on a dialect whose service creates its schema at start-up whatever our lock says
    (SQLite), the whole chain runs in one write transaction begun by
    :func:`_begin_on_an_empty_schema`: the service sees no table or all of them, never a
    half-made schema to complete between two revisions.  A failure then leaves base.
    """
    together = _create_in_one_transaction(connection, steps, result)
    if together:
        _begin_on_an_empty_schema(connection, steps[0][0])
    for revision, reached, direction in steps:
        _emit(progress, "apply_start", revision, direction)
        started = time.monotonic()
        entry = _entry(revision, direction, result.after, reached)
        retries = _RetryCounter(progress)
        try:
            _step_retrying(connection, (revision, reached, direction), how, retries, entry, commit=not together)
        except BaseException as exc:
            if stop.signal is not None:
                _emit(progress, "apply_failure", revision, direction, time.monotonic() - started)
                interrupted = _interrupted(connection, stop.signal, result, steps)
                _log_failure(connection, entry, interrupted.message)
                raise interrupted from exc
            if not isinstance(exc, Exception):
                raise
            connection.rollback()
            _emit(progress, "apply_failure", revision, direction, time.monotonic() - started)
            transactional = dialect_for(connection).TRANSACTIONAL_DDL
            if direction == "downgrade" and not transactional:
                _forget_untouched_downgrade(connection, revision, how[0])
            if isinstance(exc, DataLossError):  # refused before the revision changed anything
                _log_failure(connection, entry, exc.message)
                raise
            now_at = None if together else result.after
            failure = _failure(exc, revision, direction, now_at, transactional, retries.steps)
            _log_failure(connection, entry, failure.message)
            raise failure from exc
        elapsed = time.monotonic() - started
        result.steps.append(StepTiming(revision, direction, elapsed, retries.count))
        result.after = reached
        _emit(progress, "apply_success", revision, direction, elapsed)
    if together:
        connection.commit()


def _create_in_one_transaction(
    connection: Connection, steps: list[tuple[str, str | None, str]], result: RunResult
) -> bool:
    """Whether ``steps`` create the schema from base where the service may create it meanwhile."""
    dialect = dialect_for(connection)
    from_base = bool(steps) and result.after is None and steps[0][2] == "upgrade"
    return from_base and dialect.SERVICE_START_ARTEFACTS and dialect.TRANSACTIONAL_DDL


def _forget_adoption(connection: Connection) -> None:
    """At base the schema is gone, so the adoption record would only mislead a later status.

    Dropped when a run reaches base and when one starts there (after ``alembic downgrade``).
    """
    with connection.begin():
        adoption_record.clear(connection)


class _RetryCounter:
    """Forwards a revision's own progress events and counts its lock retries.

    ``backfill`` events (``detail`` names the phase) get their rate and time left here, from
    when the phase was first reported: one measure for every dialect's row work."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.count = 0
        self.steps = 0  # transaction boundaries passed: steps committed on their own
        self.revision = self.direction = ""
        self.started = time.monotonic()
        self._phases: dict[str, tuple[float, int]] = {}  # phase -> (start, rows done then)

    def __call__(self, kind: str, detail: str, *, done: int = 0, total: int = 0) -> None:
        if kind == "lock_retry":
            self.count += 1
        elif kind == "step":
            self.steps += 1
        if self.progress is None:
            return
        now = time.monotonic()
        event = ProgressEvent(kind, self.revision, self.direction, now - self.started, detail, done, total)
        if kind == "backfill":
            event = self._measured(event, now)
        self.progress(event)

    def _measured(self, event: ProgressEvent, now: float) -> ProgressEvent:
        began, first = self._phases.setdefault(event.detail, (now, event.done))
        took = now - began
        rate = (event.done - first) / took if took > 0 else 0.0
        eta = (event.total - event.done) / rate if rate > 0 else None
        return dataclasses.replace(event, phase=event.detail, rate=rate, eta=eta)


def _step_retrying(
    connection: Connection,
    step: tuple[str, str | None, str],
    how: tuple[Sequence[str], bool],
    retries: _RetryCounter,
    entry: Entry,
    *,
    commit: bool = True,
) -> None:
    """One revision; on PostgreSQL tried again (rolled back first) when it lost a lock race.

    Every revision is one transaction or resumable, so trying it again is safe.
    """
    revision, reached, direction = step
    retries.revision, retries.direction = revision, direction
    attempts = lock_retries() if dialect_for(connection).LOCK_TIMEOUT_RETRIES else 1
    for attempt in range(1, attempts + 1):
        try:
            _step(connection, (revision, reached, direction), how, entry, retries, commit=commit)
            return
        except Exception as exc:
            if attempt == attempts or not is_lock_conflict(exc):
                raise
            connection.rollback()
            delay = backoff(attempt)
            retries("lock_retry", f"revision {revision}: {_first_line(exc)} (attempt {attempt} "
                    f"of {attempts}), retrying in {delay:.1f}s")
            time.sleep(delay)


def _step(
    connection: Connection,
    step: tuple[str, str | None, str],
    how: tuple[Sequence[str], bool],
    entry: Entry,
    report: _RetryCounter | None = None,
    *,
    commit: bool = True,
) -> None:
    from alembic import command

    revision, reached, direction = step
    version_locations, allow_data_loss = how
    config = make_config(connection=connection, extra_version_locations=version_locations)
    config.attributes["report"] = report
    config.attributes[ALLOW_DATA_LOSS] = allow_data_loss
    # A downgrade whose statements commit one by one is marked before its first one, so a
    # kill half-way is visible to every later run (llm_proxy_db.migration.unfinished_runs).
    marked = direction == "downgrade" and not dialect_for(connection).TRANSACTIONAL_DDL
    if marked:
        unfinished.mark(connection, unfinished.DOWNGRADE, revision)
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, reached or "base")
    run_log.write(connection, dataclasses.replace(entry, ended_at=run_log.now()))
    if commit:
        connection.commit()  # the revision and its run-log row in one transaction
    if marked:
        unfinished.clear(connection, unfinished.DOWNGRADE)


def _interrupted(
    connection: Connection, signum: int, result: RunResult, steps: list[tuple[str, str | None, str]]
) -> MigrationInterrupted:
    """A run stopped by a signal: the revision running is rolled back, or, where its steps
    commit on their own (MySQL, PostgreSQL's online steps), left partly applied for a rerun to
    finish; the error says which."""
    import signal as signals

    done = len(result.steps)
    running = steps[done] if done < len(steps) else None
    at, partly = result.after, None
    try:
        connection.rollback()  # also ends a connection the signal invalidated (a new one is opened)
        at = current_revision(connection)  # what was committed (a chain from base: nothing)
        partly = _left_part_way(connection, running)
        connection.rollback()
    except Exception:  # noqa: BLE001 - the connection went with the signal: report what is known
        connection.invalidate()
    name = signals.Signals(signum).name
    what = f"{running[2]} of revision {running[0]}" if running else "the run"
    if partly:
        return MigrationInterrupted(
            f"interrupted by {name} during {what}: not rolled back, {partly}",
            signal=signum,
            current_revision=at,
            hint="run the command again: it finishes what that revision left, without "
            "repeating the steps done; `llm-proxy-db migrate status` shows them",
        )
    return MigrationInterrupted(
        f"interrupted by {name} during {what}: rolled back; the database is at revision {at or 'base'}",
        signal=signum,
        current_revision=at,
        hint="run the command again to finish (that revision was rolled back: nothing half-done stays)",
    )


def _left_part_way(connection: Connection, running: tuple[str, str | None, str] | None) -> str | None:
    """What the interrupted revision left committed (None: nothing, it was rolled back)."""
    if running is None:
        return None
    revision, _reached, direction = running
    if direction == "upgrade":
        return revisions.partly_applied(connection, revision)
    if dialect_for(connection).TRANSACTIONAL_DDL:
        return None
    lines = unfinished_runs.describe(connection)  # the downgrade's marker, set before its first step
    return lines[0] if lines else None


def _begin_on_an_empty_schema(connection: Connection, revision: str) -> None:
    """Begin the transaction that creates the schema from base (SQLite: ``BEGIN IMMEDIATE``,
    the write lock) and check, under it, that none of our tables exists yet.

    The service ignores our migration lock on SQLite and may create its schema after we found
    the database empty; checking in the transaction that creates ours closes that gap (the
    revisions run inside this transaction, committed once at the end).  When the tables did
    appear: :class:`SchemaAppearedError`, nothing changed (the caller adopts them).
    """
    if before_first_revision_hook is not None:
        before_first_revision_hook()
    connection.begin()
    if our_tables_present(connection):
        connection.rollback()
        raise SchemaAppearedError(
            f"the service's tables appeared before revision {revision} could create them "
            "(the service started meanwhile); nothing was changed",
            failed_revision=revision,
            hint="run the command again: it adopts what the service created",
        )


def _forget_untouched_downgrade(connection: Connection, revision: str, version_locations: Sequence[str]) -> None:
    """A downgrade that failed before its first step: its marker would only block the next run."""
    try:
        unfinished_runs.forget_if_untouched(connection, revision, script_directory(tuple(version_locations)))
    except Exception:  # noqa: BLE001 - the failure itself is what the caller must see
        connection.rollback()


def _entry(revision: str, direction: str, start: str | None, reached: str | None) -> Entry:
    moment = run_log.now()
    return run_log.Entry(direction, revision, start, reached, moment, moment)


def _log_failure(connection: Connection, entry: Entry, message: str) -> None:
    """Record a failed step after its rollback; a log that cannot be written is no reason
    to hide the failure itself."""
    failed = dataclasses.replace(entry, ended_at=run_log.now(), outcome="failure", detail=message)
    try:
        run_log.write(connection, failed)
        connection.commit()
    except Exception:  # noqa: BLE001 - the original failure is what the caller must see
        connection.rollback()


def _failure(
    exc: Exception,
    revision: str,
    direction: str,
    now_at: str | None,
    transactional: bool = True,
    committed_steps: int = 0,
) -> MigrationError:
    detail, hint = explain_driver_message(exc.message if isinstance(exc, LLMProxyDBError) else _first_line(exc))
    statement = getattr(exc, "statement", None)
    if "lock timeout" in detail and statement:  # the statement names the table it waited for
        detail += f" (waiting to run: {' '.join(str(statement).split())[:120]})"
    if "database is locked" in detail:
        hint = (
            "another process kept the SQLite database locked for longer than the busy timeout "
            "(is llm-proxy running a long write?); run again when it is idle"
        )
    outcome, position = "failed and was rolled back", "is at"
    if not transactional:  # each DDL statement committed: the revision may be partly applied
        outcome, position = "failed part-way (MySQL commits each DDL statement)", "is recorded at"
        hint = "fix the cause and run again: the revision skips the steps already done; `migrate status` shows them"
    elif committed_steps:  # a revision run in several transactions (PostgreSQL online steps)
        outcome = f"failed part-way (after {committed_steps} step(s) committed on their own)"
        hint = "fix the cause and run again: the revision finishes what is left; the service works meanwhile"
    return MigrationError(
        f"{direction} of revision {revision} {outcome}: {detail}; "
        f"the database {position} revision {now_at or 'base'}",
        failed_revision=revision,
        current_revision=now_at,
        hint=hint or (exc.hint if isinstance(exc, LLMProxyDBError) else None),
    )


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _emit(progress: Progress | None, kind: str, revision: str, direction: str, elapsed: float = 0.0) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, revision, direction, elapsed))
