"""A dress rehearsal: run the pending migrations on a copy of the real data, then discard it.

The SQLite file is copied (a checked copy, as for a backup) into a temporary directory; a PostgreSQL
database is copied with ``pg_dump`` / ``pg_restore`` into a scratch database on the same
server (the user needs CREATEDB; the service may stay connected).  The pending revisions run
on the copy, timed one by one, and the copy is deleted.  The real database is only read.

An unversioned database is adopted on the copy exactly as ``setup`` would adopt it
(:func:`llm_proxy_db.adoption.adopt.run_or_adopt`: detect, stamp, then the remaining revisions);
one of no known state is refused before anything is copied, as ``setup`` refuses it.

At head (nothing pending) no copy is made: the refusals the copy would have met (a MySQL
server that takes no writes, SQLite rows breaking a foreign key) are asked of the database
itself, and the answer is "nothing pending".  So the fast path can give the same answer
(:mod:`llm_proxy_db.quick_answers`); it does not prove that a copy could be made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import ConfigError, MigrationError
from llm_proxy_db.migration import revisions, unfinished_runs
from llm_proxy_db.migration.executor import Progress, ProgressEvent, StepTiming
from llm_proxy_db.safety.guard import refuse_broken_references
from llm_proxy_db.safety.rehearsal_result import RehearsalResult
from llm_proxy_db.safety.topology import writable_settings

__all__ = ["RehearsalResult", "rehearse"]


def rehearse(
    settings: Settings,
    target: str = revisions.HEAD,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    work_dir: str | os.PathLike[str] | None = None,
) -> RehearsalResult:
    """Run the revisions up to ``target`` on a throw-away copy of the database."""
    if settings.known_missing():
        raise ConfigError(
            f"SQLite database {settings.describe()} does not exist",
            hint="check DATABASE_PATH (--database-path): there is nothing to rehearse on",
        )
    settings = writable_settings(settings)  # the copy is made on the primary, by a session of ours
    scripts = revisions.script_directory(tuple(version_locations))
    target_id = revisions.resolve(target, scripts)
    with connect(settings, create=False) as connection:
        current = revisions.peek_revision(settings, version_locations, connection)
        # A restore or a downgrade left part-way (MySQL) is refused as setup refuses it: its copy
        # would look whole (the marker is not copied), so a rehearsal on it would prove nothing.
        unfinished_runs.refuse_reading(connection, "rehearse", scripts)
    if revisions.position(target_id, scripts) < revisions.position(current, scripts):
        raise ConfigError(
            f"target {target} is below the current revision {current}",
            hint="rehearse rehearses upgrades only; choose a later --to",
        )
    if current is not None and current == target_id:  # nothing pending: no copy (docs/cli.md)
        _refuse_as_a_copy_would(settings)
        return RehearsalResult(settings.describe(), current, target_id)
    if current is None:
        adoption.check_adoptable(settings, target_id)  # an unknown shape: refused, nothing copied
    result = RehearsalResult(settings.describe(), current, target_id)
    with _copy_of(settings, work_dir) as copy:
        _run_on_copy(copy, target_id, result, progress, version_locations)
    return result


def _refuse_as_a_copy_would(settings: Settings) -> None:
    """At head: what making the copy would have refused, asked of the database itself (reads
    only): a server that takes no writes (MySQL), rows breaking a foreign key (SQLite)."""
    dialect = dialect_for(settings)
    dialect.check_copy_source(settings)
    if dialect.FOREIGN_KEYS_OFF_WHILE_MIGRATING:
        with connect(settings, create=False) as connection:  # a reader: no write lock, nothing written
            refuse_broken_references(connection)


@contextmanager
def _copy_of(settings: Settings, work_dir: str | os.PathLike[str] | None) -> Iterator[Settings]:
    """A throw-away copy (the dialect's ``copy_of``): a temporary SQLite file, or a scratch
    database on the same server."""
    with tempfile.TemporaryDirectory(prefix="llm-proxy-rehearsal-", dir=work_dir) as scratch, (
        dialect_for(settings).copy_of(settings, Path(scratch))
    ) as copy_settings:
        yield copy_settings


def _run_on_copy(
    copy: Settings,
    target_id: str | None,
    result: RehearsalResult,
    progress: Progress | None,
    version_locations: Sequence[str],
) -> None:
    def record(event: ProgressEvent) -> None:
        if event.kind == "apply_success":
            result.steps.append(StepTiming(event.revision, event.direction, event.elapsed))
        if event.kind == "adopted":
            result.adopted, result.stamped = event.detail, event.revision
        if progress is not None:
            progress(event)

    with connect(copy, foreign_keys=False) as connection:
        if dialect_for(copy).FOREIGN_KEYS_OFF_WHILE_MIGRATING:
            refuse_broken_references(connection)  # what the guarded run would refuse
        try:
            adoption.run_or_adopt(
                connection, target_id, progress=record, version_locations=version_locations
            )
        except MigrationError as exc:
            result.failed_revision = exc.failed_revision
            result.error = exc.message
