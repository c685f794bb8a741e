"""The bound on every lock wait of a command: ``--lock-timeout`` (else ``LLM_PROXY_LOCK_TIMEOUT``, else 300 s).

Not only the migration lock is waited for: a read of ``goose_db_version`` or ``alembic_version``
waits for a session holding a lock on it, a write transaction for the service's write lock.  A
command that takes ``--lock-timeout`` runs in :func:`bounded_waits`; each dialect's engine
reads :func:`wait_bound` when it opens a transaction or a session (PostgreSQL ``lock_timeout``
per transaction, MySQL ``lock_wait_timeout`` / ``innodb_lock_wait_timeout`` per session,
SQLite's busy timeout) and hands it to its client tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from llm_proxy_db.config.parsing import DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_ENV, parse_seconds

# Set in a connection's ``info`` while a migration's own (shorter) table-lock timeout applies to
# it: the command-wide bound then steps aside (PostgreSQL: dialects/postgresql/waits.py).
OWN_LOCK_TIMEOUT = "llm_proxy_db.own_lock_timeout"

_BOUND: ContextVar[float | None] = ContextVar("llm_proxy_wait_bound", default=None)


def wait_bound() -> float:
    """Seconds any one lock wait may last: the command's ``--lock-timeout``, else the
    environment's ``LLM_PROXY_LOCK_TIMEOUT``, else the default (300 s)."""
    explicit = _BOUND.get()
    if explicit is not None:
        return explicit
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    return parse_seconds(LOCK_TIMEOUT_ENV, raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT


def configured() -> bool:
    """Whether a bound was given (``--lock-timeout`` or the environment), not the default."""
    return _BOUND.get() is not None or bool(os.environ.get(LOCK_TIMEOUT_ENV, "").strip())


def wait_bound_ms() -> int:
    """:func:`wait_bound` in whole milliseconds, at least 1 (0 would mean "wait forever")."""
    return max(1, int(wait_bound() * 1000))


@contextmanager
def bounded_waits(seconds: float | None) -> Iterator[None]:
    """Every lock wait in the body lasts at most ``seconds`` (None: the environment's or default)."""
    if seconds is None:
        yield
        return
    token = _BOUND.set(parse_seconds("--lock-timeout", seconds))
    try:
        yield
    finally:
        _BOUND.reset(token)
