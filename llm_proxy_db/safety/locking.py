"""One migrator at a time, with locks the operating system or the server frees on death.

Each dialect module holds its lock (``migration_lock``); this module chooses the timeout and
polls, reporting that it waits.  PostgreSQL: a session-level advisory lock taken on the very
connection that runs the migrations, and then the service's own migration lock (its goose
runner's advisory key), so a replica of the service that starts meanwhile fails its start
cleanly instead of replaying goose files on a half-migrated schema, and a migration waits for
a service that is starting.  Both survive the per-revision commits and are released when that
connection closes, including when the process is killed.  SQLite: ``flock`` on a sidecar file
(``<database>.migrate.lock``); the kernel releases it when the process dies.  There are no
lock rows that could go stale.  MySQL: ``GET_LOCK`` on the migrating connection, for our own
name and the service's (``llm-proxy-migrations``, so its replicas' goose runners wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Connection

from llm_proxy_db.config.parsing import LOCK_TIMEOUT_ENV, lock_timeout_seconds
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import LockTimeoutError
from llm_proxy_db.migration.executor import Progress, ProgressEvent

POLL_INTERVAL = 0.1
REPORT_EVERY = 5.0
WAITING = "waiting for the migration lock held by another process"
SERVICE_WAITING = "waiting for the llm-proxy service's migration lock (a service is starting)"
# MySQL's GET_LOCK names belong to the whole server, not to one database.
SERVICE_WAITING_SERVER_WIDE = (
    "waiting for the llm-proxy service's migration lock (a service is starting, or a migration is "
    "running, on some database of this server: MySQL lock names are server-wide)"
)


def lock_timeout(value: float | None = None, env: Mapping[str, str] | None = None) -> float:
    """The lock timeout in seconds: ``value``, else ``LLM_PROXY_LOCK_TIMEOUT``, else 300."""
    return lock_timeout_seconds(value, env)


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock`` (see :mod:`llm_proxy_db.dialects.sqlite`)."""
    from llm_proxy_db.dialects import sqlite

    return sqlite.lock_file(settings)


@contextmanager
def migration_lock(
    settings: Settings,
    connection: Connection | None,
    *,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> Iterator[float]:
    """Hold the migration lock for the body; yields the seconds spent waiting for it.

    For the server dialects the lock belongs to ``connection``: run the migrations on it.
    SQLite locks a sidecar file and needs no connection.
    """
    with settings.dialect.migration_lock(settings, connection, lock_timeout(timeout), progress) as waited:
        yield waited


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
