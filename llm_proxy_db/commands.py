"""The library API: one plain function per verb.  Each returns data and never prints.

A Python service (or a test) calls these directly; the ``llm-proxy`` CLI is a thin layer
that parses options, calls one of them, and renders the result.

Alembic, SQLAlchemy and the revision graph are imported inside the functions that need
them: ``status`` on an up-to-date database answers from :mod:`llm_proxy_db.quick_status`
alone, so a service or a deployment step that checks before every start stays cheap.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_proxy_db import manifest, quick_status
from llm_proxy_db.errors import ConfigError, UnknownRevisionError
from llm_proxy_db.settings import Settings

if TYPE_CHECKING:
    from llm_proxy_db.executor import Progress, RunResult
    from llm_proxy_db.revisions import RevisionInfo

HEAD = "head"  # the same spelling as revisions.HEAD, without importing Alembic


@dataclass(frozen=True)
class Status:
    """Where a database stands against the revision scripts."""

    database: str
    current_revision: str | None
    head_revision: str
    pending: list[str]
    checksum_warnings: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """True when nothing is pending."""
        return not self.pending

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the keys of ``llm-proxy migrate status --json``)."""
        return {
            "database": self.database,
            "current_revision": self.current_revision,
            "head_revision": self.head_revision,
            "pending": list(self.pending),
            "up_to_date": self.up_to_date,
            "checksum_warnings": list(self.checksum_warnings),
        }


def status(settings: Settings) -> Status:
    """Current revision, head and pending revisions.  Never creates or changes anything."""
    at_head = quick_status.current_head(settings)
    if at_head is not None:
        head, warnings = at_head
        return Status(settings.describe(), head, head, [], checksum_warnings=warnings)
    from llm_proxy_db import revisions
    from llm_proxy_db.database import connect
    from llm_proxy_db.version_table import current_revision

    if settings.is_sqlite and not _sqlite_exists(settings):
        current = None
    else:
        with connect(settings, create=False) as connection:
            current = current_revision(connection)
    revisions.position(current)  # refuses a revision written by a newer release
    return Status(
        database=settings.describe(),
        current_revision=current,
        head_revision=revisions.head_revision(),
        pending=revisions.between(current, revisions.head_revision()),
        checksum_warnings=manifest.check_applied(current),
    )


def status_at_head(database: str) -> Status:
    """The status of a database known to be at head: no Alembic, no revision graph.

    The head comes from the checksum manifest, whose entries for the applied revisions are
    checked against the files as on every start.
    """
    head = quick_status.head_revision()
    assert head is not None
    return Status(database, head, head, [], checksum_warnings=quick_status.checksum_warnings(head))


def history() -> list[RevisionInfo]:
    """Every revision, oldest first."""
    from llm_proxy_db import revisions

    return revisions.chain()


def upgrade(
    settings: Settings,
    target: str = HEAD,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
) -> RunResult:
    """Apply revisions up to ``target`` (default head), each in its own transaction."""
    return _migrate(settings, target, "upgrade", progress, version_locations)


def downgrade(
    settings: Settings,
    target: str | None = None,
    *,
    steps: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Revert to ``target`` (a revision or ``base``) or by ``steps`` revisions."""
    if (target is None) == (steps is None):
        raise ConfigError("downgrade needs exactly one of a target revision or a number of steps")
    if steps is not None:
        target = _steps_below(status(settings).current_revision, steps)
    assert target is not None
    return _migrate(settings, target, "downgrade", progress, ())


def setup(settings: Settings, *, progress: Progress | None = None) -> RunResult:
    """Create the SQLite data directory if needed and bring the database to head.

    At head this is one driver read (:mod:`llm_proxy_db.quick_status`) and a run with no steps.
    """
    at_head = quick_status.current_head(settings)
    if at_head is not None:
        from llm_proxy_db.executor import RunResult

        head, warnings = at_head
        return RunResult(before=head, after=head, checksum_warnings=warnings)
    return upgrade(settings, HEAD, progress=progress)


def upgrade_sql(settings: Settings, target: str = HEAD, start: str | None = None) -> str:
    """The SQL an upgrade from ``start`` (default base) to ``target`` would run, for the dialect."""
    from alembic import command
    from llm_proxy_db import revisions

    start_id = revisions.resolve(start) if start else None
    end_id = revisions.resolve(target)
    if revisions.position(end_id) < revisions.position(start_id):
        raise ConfigError(f"{target} is below {start}: use migrate down --sql")
    spec = f"{start_id}:{end_id}" if start_id else str(end_id)
    return _offline(settings, lambda config: command.upgrade(config, spec, sql=True))


def downgrade_sql(settings: Settings, target: str, start: str = HEAD) -> str:
    """The SQL a downgrade from ``start`` (default head) to ``target`` would run."""
    from alembic import command
    from llm_proxy_db import revisions

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
) -> RunResult:
    from llm_proxy_db import revisions
    from llm_proxy_db.database import connect
    from llm_proxy_db.executor import run
    from llm_proxy_db.version_table import current_revision

    scripts = revisions.script_directory(tuple(version_locations))
    target_id = revisions.resolve(target, scripts)
    with connect(settings, foreign_keys=False) as connection:
        current = current_revision(connection)
        moving_up = revisions.position(target_id, scripts) >= revisions.position(current, scripts)
        if moving_up != (direction == "upgrade") and current != target_id:
            verb = "below" if direction == "upgrade" else "above"
            raise ConfigError(
                f"target {target} is {verb} the current revision {current or 'base'}",
                hint=f"use migrate {'down' if direction == 'upgrade' else 'up'} instead",
            )
        warnings = manifest.check_applied(current)  # raises in strict mode
        result = run(connection, target_id, progress=progress, version_locations=version_locations)
        result.checksum_warnings = warnings
        return result


def _steps_below(current: str | None, steps: int) -> str:
    from llm_proxy_db import revisions

    if steps < 1:
        raise ConfigError("--steps must be at least 1")
    depth = revisions.position(current)
    if steps > depth:
        raise UnknownRevisionError(
            f"cannot go down {steps} step(s): the database is only {depth} revision(s) above base"
        )
    return revisions.BASE if steps == depth else revisions.ids()[depth - steps - 1]


def _offline(settings: Settings, call: Any) -> str:
    from llm_proxy_db.alembic_config import make_config

    buffer = io.StringIO()
    config = make_config(settings)
    config.output_buffer = buffer
    call(config)
    return buffer.getvalue()


def _sqlite_exists(settings: Settings) -> bool:
    assert settings.database_path is not None
    return settings.database_path.exists()
