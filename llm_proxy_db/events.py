"""What a run reports while it works: :class:`ProgressEvent` and the :data:`Progress` callback.

Pure data at the bottom of the package: the dialects' lock waits, the migration executor, the
safety net and adoption all emit these events; the CLI renders them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """``apply_start`` / ``apply_success`` / ``apply_failure`` for one revision.

    The safety net adds ``lock_wait`` / ``lock_acquired`` (``revision`` empty) and
    ``backup_done`` (``detail`` is the backup file); adoption adds ``adopted`` (``revision``
    the stamped revision, ``detail`` the detected state); ``detail`` is a human-readable extra.
    Revisions that run in several transactions (PostgreSQL, :mod:`llm_proxy_db.migration.pg_online`)
    add ``step`` (a transaction boundary passed), ``backfill`` (``done`` of ``total`` rows)
    and ``lock_retry`` (a lock not granted in time or a deadlock; tried again after a pause).
    """

    kind: str
    revision: str
    direction: str
    elapsed: float = 0.0
    detail: str = ""
    done: int = 0
    total: int = 0


Progress = Callable[[ProgressEvent], None]
