"""Bringing the database to head when a service starts: one call, safe on many replicas.

``auto_upgrade(settings)`` is what a service (or ``llm-proxy setup`` in an entrypoint) runs
before it serves traffic.  An up-to-date database costs one cheap read: no lock, no backup.
Otherwise the guarded path runs (lock, re-read, backup, upgrade; see :mod:`guard`).  A
database written by a newer release is never touched nor started against.

``LLM_PROXY_AUTO_MIGRATE=0`` is for operators who migrate in a separate step (an init
container running ``llm-proxy migrate up``): then ``auto_upgrade`` never changes the schema;
it returns when the database is at head and raises :class:`PendingMigrationsError`
otherwise, so a replica cannot start against an old schema.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_proxy_db import quick_status
from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.config.parsing import AUTO_MIGRATE_ENV, parse_bool
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import PendingMigrationsError
from llm_proxy_db.migration import manifest, revisions
from llm_proxy_db.migration.executor import Progress
from llm_proxy_db.safety.guard import MigrationOutcome, SafetyOptions, guarded_run
from llm_proxy_db.service import token_ids

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

UP_TO_DATE = "up_to_date"
UPGRADED = "upgraded"
ADOPTED = "adopted"


@dataclass
class StartupResult(MigrationOutcome):
    """What startup did: ``up_to_date`` (nothing changed), ``upgraded``, or ``adopted``
    (an unversioned database stamped at its detected state, nothing left to run)."""

    action: str = UP_TO_DATE
    # Tokens an older release wrote without id, given one by this start (llm_proxy_db.service.token_ids).
    filled_token_ids: int = 0

    @property
    def changed(self) -> bool:
        """True when this call applied revisions, adopted the database or filled token ids."""
        return bool(self.steps) or self.adopted is not None or bool(self.filled_token_ids)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for a service's startup log."""
        return {
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "applied": self.applied,
            "adopted": self.adopted,
            "backup": str(self.backup) if self.backup else None,
            "lock_wait_seconds": round(self.lock_wait, 3),
            "checksum_warnings": list(self.checksum_warnings),
            "filled_token_ids": self.filled_token_ids,
        }


def auto_migrate_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``LLM_PROXY_AUTO_MIGRATE`` is 0/false/no/off."""
    return parse_bool(AUTO_MIGRATE_ENV, (os.environ if env is None else env).get(AUTO_MIGRATE_ENV), True)


def _pending_error(
    settings: Settings, current: str | None, head: str, pending: list[str], state: str | None
) -> PendingMigrationsError:
    """Behind head with auto-migration off; an unversioned database says what it was
    detected as (``state``)."""
    if state not in (None, "empty"):
        return PendingMigrationsError(
            f"{settings.describe()} has no alembic_version (detected {state}): it needs adoption, "
            f"and {AUTO_MIGRATE_ENV} is off",
            hint="run `llm-proxy migrate adopt --dry-run` to see the plan, then `llm-proxy migrate adopt`",
        )
    return PendingMigrationsError(
        f"{settings.describe()} is at revision {current or 'base'}, {len(pending)} revision(s) "
        f"behind head {head} ({', '.join(pending)}), and {AUTO_MIGRATE_ENV} is off",
        hint="run `llm-proxy migrate up` (for example in an init container) before starting",
    )


def unversioned_state(settings: Settings, connection: Connection | None = None) -> str:
    """What a database without ``alembic_version`` is: ``empty``, a known state, or ``unknown``."""
    if connection is not None:
        return adoption.detect(connection).state_name
    if settings.known_missing():
        return "empty"
    with connect(settings, create=False) as opened:
        return adoption.detect(opened).state_name


def auto_upgrade(
    settings: Settings | None = None,
    *,
    enabled: bool | None = None,
    options: SafetyOptions | None = None,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
) -> StartupResult:
    """Bring the database to head at startup, or return at once when it is already there.

    ``enabled=None`` reads ``LLM_PROXY_AUTO_MIGRATE``.  Raises
    :class:`~llm_proxy_db.errors.UnknownRevisionError` for a database newer than this code,
    :class:`PendingMigrationsError` when behind with auto-migration off.  Without
    ``settings``, the service's own variables are read (``DB_DRIVER``, ``DATABASE_PATH``,
    ``DATABASE_URL``).  Past the one driver read of the up-to-date case, everything (the
    revision read, the lock, adoption, the revisions, filling token ids) runs on one
    connection, which creates a missing SQLite file (unless auto-migration is off: then the
    refusal creates nothing).
    """
    settings = settings or resolve_settings()
    at_head = None if version_locations else quick_status.current_head(settings, adopted_ok=True)
    if at_head is not None:  # one driver read, no revision graph (see quick_status)
        head, warnings = at_head
        return StartupResult(head, head, checksum_warnings=warnings)
    enabled = auto_migrate_enabled() if enabled is None else enabled
    missing = settings.known_missing()
    if missing and not enabled:  # refused without creating anything
        return _upgrade(settings, None, enabled, options, progress, version_locations)
    # The one connection of the run (a missing SQLite file is created by opening it).
    with connect(settings, foreign_keys=False, create=missing) as connection:
        return _upgrade(settings, connection, enabled, options, progress, version_locations)


def _upgrade(
    settings: Settings,
    connection: Connection | None,
    enabled: bool,
    options: SafetyOptions | None,
    progress: Progress | None,
    version_locations: Sequence[str],
) -> StartupResult:
    """:func:`auto_upgrade` past the fast path, on ``connection`` (None: a missing SQLite file)."""
    scripts = revisions.script_directory(tuple(version_locations))
    head = revisions.head_revision(scripts)
    current = revisions.peek_revision(settings, version_locations, connection)
    if current == head:
        warnings = manifest.check_applied(current)
        return StartupResult(current, current, checksum_warnings=warnings,
                             filled_token_ids=_fill_missing(settings, connection))
    if not enabled:
        state = None if current is not None else unversioned_state(settings, connection)
        raise _pending_error(settings, current, head, revisions.between(current, head, scripts), state)
    # A database the service created is verified (before the lock, and again under it before
    # any backup) and stamped, never re-created.
    runner = adoption.GuardedAdoption(progress=progress, version_locations=version_locations)
    if current is None and connection is not None:
        runner.precheck(connection, head)
    outcome = guarded_run(
        settings, lambda _current: head, options=options, progress=progress,
        version_locations=version_locations, runner=runner, check=runner.check, connection=connection,
    )
    action = UPGRADED if outcome.steps else (ADOPTED if outcome.adopted else UP_TO_DATE)
    filled = _fill_missing(settings, connection) if outcome.after == head else 0
    return StartupResult(
        outcome.before, outcome.after, outcome.steps, outcome.checksum_warnings, outcome.adopted,
        backup=outcome.backup, lock_wait=outcome.lock_wait, action=action,
        filled_token_ids=filled,
    )


def _fill_missing(settings: Settings, connection: Connection | None) -> int:
    return token_ids.fill_missing_on(connection) if connection is not None else token_ids.fill_missing(settings)
