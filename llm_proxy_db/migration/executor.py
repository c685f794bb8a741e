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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import LLMProxyDBError, MigrationError
from llm_proxy_db.events import Progress, ProgressEvent
from llm_proxy_db.failures import explain_driver_message
from llm_proxy_db.migration import adoption_record, run_log
from llm_proxy_db.migration.pg_online import backoff, is_lock_conflict, lock_retries, stop_on_sigterm
from llm_proxy_db.migration.results import RunResult, StepTiming
from llm_proxy_db.migration.revisions import between, chain, position, script_directory
from llm_proxy_db.migration.version_table import current_revision

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

    from llm_proxy_db.migration.run_log import Entry


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
) -> RunResult:
    """Move the database on ``connection`` to ``target`` (None = base), one revision at a time."""
    connection.commit()
    start = current_revision(connection)
    connection.commit()
    result = RunResult(before=start, after=start)
    scripts = script_directory(tuple(version_locations))
    steps = plan(start, target, scripts)
    if start is None and steps:  # a record left by a downgrade done by other means is stale
        _forget_adoption(connection)
    with stop_on_sigterm():
        _apply(connection, steps, result, progress, version_locations)
    if result.steps and result.after is None:
        _forget_adoption(connection)
    return result


def _apply(
    connection: Connection,
    steps: list[tuple[str, str | None, str]],
    result: RunResult,
    progress: Progress | None,
    version_locations: Sequence[str],
) -> None:
    """Run ``steps`` in order, recording each in ``result``; the first failure raises."""
    for revision, reached, direction in steps:
        _emit(progress, "apply_start", revision, direction)
        started = time.monotonic()
        entry = _entry(revision, direction, result.after, reached)
        retries = _RetryCounter(progress)
        try:
            _step_retrying(connection, (revision, reached, direction), version_locations, retries, entry)
        except Exception as exc:
            connection.rollback()
            _emit(progress, "apply_failure", revision, direction, time.monotonic() - started)
            transactional = dialect_for(connection).TRANSACTIONAL_DDL
            failure = _failure(exc, revision, direction, result.after, transactional, retries.steps)
            _log_failure(connection, entry, failure.message)
            raise failure from exc
        elapsed = time.monotonic() - started
        result.steps.append(StepTiming(revision, direction, elapsed, retries.count))
        result.after = reached
        _emit(progress, "apply_success", revision, direction, elapsed)


def _forget_adoption(connection: Connection) -> None:
    """At base the schema is gone, so the adoption record would only mislead a later status.

    Dropped when a run reaches base and when one starts there (after ``alembic downgrade``).
    """
    with connection.begin():
        adoption_record.clear(connection)


class _RetryCounter:
    """Forwards a revision's own progress events and counts its lock retries."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.count = 0
        self.steps = 0  # transaction boundaries passed: steps committed on their own
        self.revision = self.direction = ""
        self.started = time.monotonic()

    def __call__(self, kind: str, detail: str, *, done: int = 0, total: int = 0) -> None:
        if kind == "lock_retry":
            self.count += 1
        elif kind == "step":
            self.steps += 1
        if self.progress is not None:
            elapsed = time.monotonic() - self.started
            self.progress(
                ProgressEvent(kind, self.revision, self.direction, elapsed, detail, done, total)
            )


def _step_retrying(
    connection: Connection,
    step: tuple[str, str | None, str],
    version_locations: Sequence[str],
    retries: _RetryCounter,
    entry: Entry,
) -> None:
    """One revision; on PostgreSQL tried again (rolled back first) when it lost a lock race.

    Every revision is one transaction or resumable, so trying it again is safe.
    """
    revision, reached, direction = step
    retries.revision, retries.direction = revision, direction
    attempts = lock_retries() if dialect_for(connection).LOCK_TIMEOUT_RETRIES else 1
    for attempt in range(1, attempts + 1):
        try:
            _step(connection, revision, reached, direction, version_locations, entry, retries)
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
    revision: str,
    reached: str | None,
    direction: str,
    version_locations: Sequence[str],
    entry: Entry,
    report: _RetryCounter | None = None,
) -> None:
    from alembic import command

    config = make_config(connection=connection, extra_version_locations=version_locations)
    config.attributes["report"] = report
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, reached or "base")
    run_log.write(connection, dataclasses.replace(entry, ended_at=run_log.now()))
    connection.commit()  # the revision and its run-log row in one transaction


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
