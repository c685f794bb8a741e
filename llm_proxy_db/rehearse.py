"""A dress rehearsal: run the pending migrations on a copy of the real data, then discard it.

The SQLite file is copied with ``VACUUM INTO`` into a temporary directory, the pending
revisions run on the copy (timed one by one), and the copy is deleted.  The real database
is only read.  PostgreSQL is refused: there, every revision is transactional, and a
rehearsal belongs on a restored ``pg_dump`` in a scratch database.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_proxy_db import revisions
from llm_proxy_db.backup import copy_database
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, MigrationError
from llm_proxy_db.executor import Progress, ProgressEvent, StepTiming, run
from llm_proxy_db.settings import Settings
from llm_proxy_db.startup import peek_revision


@dataclass
class RehearsalResult:
    """How the pending revisions went on the copy: per-revision timings and the outcome."""

    database: str
    before: str | None
    target: str | None
    steps: list[StepTiming] = field(default_factory=list)
    failed_revision: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every pending revision succeeded on the copy."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "database": self.database,
            "before": self.before,
            "target": self.target,
            "ok": self.ok,
            "steps": [{"revision": s.revision, "seconds": round(s.seconds, 3)} for s in self.steps],
            "failed_revision": self.failed_revision,
            "error": self.error,
        }


def rehearse(
    settings: Settings,
    target: str = revisions.HEAD,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
    work_dir: str | os.PathLike[str] | None = None,
) -> RehearsalResult:
    """Run the revisions up to ``target`` on a throw-away copy of the SQLite database."""
    if not settings.is_sqlite:
        raise ConfigError(
            "migrate rehearse works on SQLite files only",
            hint="PostgreSQL revisions are transactional; to rehearse, pg_restore a dump into "
            "a scratch database and run migrate up against it",
        )
    assert settings.database_path is not None
    if not settings.database_path.exists():
        raise ConfigError(f"SQLite database {settings.database_path} does not exist")
    scripts = revisions.script_directory(tuple(version_locations))
    target_id = revisions.resolve(target, scripts)
    current = peek_revision(settings, version_locations)
    if revisions.position(target_id, scripts) < revisions.position(current, scripts):
        raise ConfigError(f"target {target} is below the current revision {current}")
    result = RehearsalResult(settings.describe(), current, target_id)
    with tempfile.TemporaryDirectory(prefix="llm-proxy-rehearsal-", dir=work_dir) as scratch:
        copy = Path(scratch) / settings.database_path.name
        copy_database(settings.database_path, copy)
        _run_on_copy(copy, target_id, result, progress, version_locations)
    return result


def _run_on_copy(
    copy: Path,
    target_id: str | None,
    result: RehearsalResult,
    progress: Progress | None,
    version_locations: Sequence[str],
) -> None:
    def record(event: ProgressEvent) -> None:
        if event.kind == "apply_success":
            result.steps.append(StepTiming(event.revision, event.direction, event.elapsed))
        if progress is not None:
            progress(event)

    with connect(Settings(driver="sqlite", database_path=copy), foreign_keys=False) as connection:
        try:
            run(connection, target_id, progress=record, version_locations=version_locations)
        except MigrationError as exc:
            result.failed_revision = exc.failed_revision
            result.error = exc.message
