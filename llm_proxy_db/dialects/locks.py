"""Waiting for a lock, whatever the dialect: the poll loop and what a wait says.

Each dialect's ``migration_lock`` (a ``flock`` on SQLite, advisory locks on PostgreSQL,
``GET_LOCK`` on MySQL) tries its lock through :func:`poll`, which reports waits as
``lock_wait`` / ``lock_acquired`` events and gives up with a :class:`LockTimeoutError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from llm_proxy_db.config.parsing import LOCK_TIMEOUT_ENV
from llm_proxy_db.errors import LockTimeoutError
from llm_proxy_db.events import Progress, ProgressEvent

if TYPE_CHECKING:
    from llm_proxy_db.config.settings import Settings

POLL_INTERVAL = 0.1
REPORT_EVERY = 5.0
WAITING = "waiting for the migration lock held by another process"
SERVICE_WAITING = "waiting for the llm-proxy service's migration lock (a service is starting)"
# MySQL's GET_LOCK names belong to the whole server, not to one database.
SERVICE_WAITING_SERVER_WIDE = (
    "waiting for the llm-proxy service's migration lock (a service is starting, or a migration is "
    "running, on some database of this server: MySQL lock names are server-wide)"
)


def poll(
    attempt: Callable[[], bool],
    timeout: float,
    progress: Progress | None,
    settings: Settings,
    what: str,
    waiting: str = WAITING,
) -> float:
    """Call ``attempt`` until it succeeds or ``timeout`` passes; returns the seconds waited.

    The dialects' locks call it; a timeout is a :class:`LockTimeoutError` naming ``what``."""
    started = time.monotonic()
    next_report = started
    while not attempt():
        now = time.monotonic()
        if now - started >= timeout:
            raise LockTimeoutError(
                f"gave up after {timeout:g}s {waiting} on {settings.describe()} ({what})",
                hint=f"{_who(waiting)} is still running; wait for it, or raise the timeout "
                f"with --lock-timeout / {LOCK_TIMEOUT_ENV}",
            )
        if now >= next_report:
            _emit(progress, "lock_wait", now - started, waiting)
            next_report = now + REPORT_EVERY
        time.sleep(POLL_INTERVAL)
    waited = time.monotonic() - started
    if waited > 0.0 and next_report > started:
        _emit(progress, "lock_acquired", waited, "took the migration lock")
    return waited


def _who(waiting: str) -> str:
    if waiting == SERVICE_WAITING_SERVER_WIDE:
        return "a starting llm-proxy service or a migration of any database on this server"
    return "a starting llm-proxy service (its goose runner)" if waiting == SERVICE_WAITING else "another migration"


def _emit(progress: Progress | None, kind: str, elapsed: float, detail: str) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, "", "", elapsed, detail))
