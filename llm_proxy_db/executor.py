"""Applying revisions one at a time on one connection, reporting progress through a callback.

One Alembic command per revision keeps each revision in its own transaction and tells us
exactly which one failed.  The executor never prints: it emits :class:`ProgressEvent`
values and the caller (CLI, service, test) decides how to show them.

Alembic and the revision graph are imported by the functions that run revisions, so the
result types can be used (a run with nothing to do at startup) without loading them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_proxy_db.errors import LLMProxyDBError, MigrationError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class ProgressEvent:
    """``apply_start`` / ``apply_success`` / ``apply_failure`` for one revision.

    The safety net adds ``lock_wait`` / ``lock_acquired`` (``revision`` empty) and
    ``backup_done`` (``detail`` is the backup file); adoption adds ``adopted`` (``revision``
    the stamped revision, ``detail`` the detected state); ``detail`` is a human-readable extra.
    """

    kind: str
    revision: str
    direction: str
    elapsed: float = 0.0
    detail: str = ""


Progress = Callable[[ProgressEvent], None]


@dataclass
class StepTiming:
    """How long one revision took."""

    revision: str
    direction: str
    seconds: float


@dataclass
class RunResult:
    """What a run changed: revision before and after, and the steps with their timings."""

    before: str | None
    after: str | None
    steps: list[StepTiming] = field(default_factory=list)
    # Applied revisions whose file changed since release (manifest.check_applied).
    checksum_warnings: list[str] = field(default_factory=list)
    # The known state an unversioned database was detected as and stamped from, if it was.
    adopted: str | None = None

    @property
    def applied(self) -> list[str]:
        """Revision ids run, in order."""
        return [step.revision for step in self.steps]


def plan(
    start: str | None, target: str | None, scripts: ScriptDirectory | None = None
) -> list[tuple[str, str | None, str]]:
    """The steps from ``start`` to ``target``: (revision run, revision reached, direction)."""
    from llm_proxy_db.revisions import between, chain, position

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
    from llm_proxy_db.revisions import script_directory
    from llm_proxy_db.version_table import current_revision

    connection.commit()
    start = current_revision(connection)
    connection.commit()
    result = RunResult(before=start, after=start)
    scripts = script_directory(tuple(version_locations))
    steps = plan(start, target, scripts)
    if start is None and steps:  # a record left by a downgrade done by other means is stale
        _forget_adoption(connection)
    for revision, reached, direction in steps:
        _emit(progress, "apply_start", revision, direction)
        started = time.monotonic()
        try:
            _step(connection, revision, reached, direction, version_locations)
        except Exception as exc:
            connection.rollback()
            _emit(progress, "apply_failure", revision, direction, time.monotonic() - started)
            raise _failure(exc, revision, direction, result.after, connection.dialect.name) from exc
        elapsed = time.monotonic() - started
        result.steps.append(StepTiming(revision, direction, elapsed))
        result.after = reached
        _emit(progress, "apply_success", revision, direction, elapsed)
    if result.steps and result.after is None:
        _forget_adoption(connection)
    return result


def _forget_adoption(connection: Connection) -> None:
    """At base the schema is gone, so the adoption record would only mislead a later status.

    Dropped when a run reaches base and when one starts there (after ``alembic downgrade``).
    """
    from llm_proxy_db import adoption_record

    with connection.begin():
        adoption_record.clear(connection)


def _step(
    connection: Connection,
    revision: str,
    reached: str | None,
    direction: str,
    version_locations: Sequence[str],
) -> None:
    from alembic import command
    from llm_proxy_db.alembic_config import make_config

    config = make_config(connection=connection, extra_version_locations=version_locations)
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, reached or "base")
    connection.commit()


def _failure(
    exc: Exception, revision: str, direction: str, now_at: str | None, dialect: str = "sqlite"
) -> MigrationError:
    detail = exc.message if isinstance(exc, LLMProxyDBError) else _first_line(exc)
    locked = "database is locked" in detail
    hint = (
        "another process kept the SQLite database locked for longer than the busy timeout "
        "(is llm-proxy running a long write?); run again when it is idle"
        if locked
        else None
    )
    outcome = "failed and was rolled back"
    if dialect == "mysql":  # each DDL statement committed: the revision may be partly applied
        outcome = "failed part-way (MySQL commits each DDL statement)"
        hint = "fix the cause and run again: the revision skips the steps already done; `migrate status` shows them"
    return MigrationError(
        f"{direction} of revision {revision} {outcome}: {detail}; "
        f"the database is recorded at revision {now_at or 'base'}"
        if dialect == "mysql"
        else f"{direction} of revision {revision} {outcome}: {detail}; the database is at revision {now_at or 'base'}",
        failed_revision=revision,
        current_revision=now_at,
        hint=hint,
    )


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _emit(progress: Progress | None, kind: str, revision: str, direction: str, elapsed: float = 0.0) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, revision, direction, elapsed))
