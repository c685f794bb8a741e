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
    add ``step`` (a transaction boundary passed), ``lock_retry`` (a lock not granted in time
    or a deadlock; tried again after a pause) and ``throttle`` (a batched phase paused while a
    streaming replica lags, and resumed).  Long row work on every dialect (PostgreSQL's
    and MySQL's backfill of ``tokens.id``, SQLite's copy of a rebuilt table) sends ``backfill``
    events: ``phase`` (``fill tokens.id``, ``copy tokens``), ``done`` of ``total`` rows, and
    the ``rate`` (rows/s) and ``eta`` (seconds left) the executor measures since the phase
    began, the same way for every dialect.  :meth:`as_dict` is the structured form (for JSON
    lines); the CLI's one renderer turns the same fields into text.
    """

    kind: str
    revision: str
    direction: str
    elapsed: float = 0.0
    detail: str = ""
    done: int = 0
    total: int = 0
    phase: str = ""
    rate: float = 0.0
    eta: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The event as data: ``event``, ``revision``, ``direction``, ``phase``, ``rows``,
        ``total``, ``rate``, ``elapsed``, ``eta``, ``detail``."""
        return {
            "event": self.kind, "revision": self.revision, "direction": self.direction,
            "phase": self.phase or None, "rows": self.done, "total": self.total,
            "rate": round(self.rate, 1), "elapsed": round(self.elapsed, 3),
            "eta": None if self.eta is None else round(self.eta, 1), "detail": self.detail,
        }


Progress = Callable[[ProgressEvent], None]
