"""One migrator at a time, with locks the operating system or the server frees on death.

PostgreSQL: a session-level advisory lock taken on the very connection that runs the
migrations.  It survives the per-revision commits and is released when that connection
closes, including when the process is killed.  SQLite: ``flock`` on a sidecar file
(``<database>.migrate.lock``); the kernel releases it when the process dies.  There are
no lock rows that could go stale.  MySQL: ``GET_LOCK`` on the migrating connection, for our
own name and the service's (``llm-proxy-migrations``, so its replicas' goose runners wait);
see :mod:`llm_proxy_db.dialects.mysql`.  Waiters poll until a timeout, reporting that they wait.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.errors import ConfigError, DatabaseConnectionError, LockTimeoutError
from llm_proxy_db.executor import Progress, ProgressEvent
from llm_proxy_db.settings import Settings, number_from_env

LOCK_TIMEOUT_ENV = "LLM_PROXY_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 300.0
POLL_INTERVAL = 0.1
REPORT_EVERY = 5.0
# A fixed 64-bit key for pg_advisory_lock: "llm-proxy-db migrations" (advisory locks are
# scoped to one database, so every llm-proxy database has its own).
ADVISORY_LOCK_KEY = 0x6C6C6D70726F7879  # b"llmproxy"
WAITING = "waiting for the migration lock held by another process"


def lock_timeout(value: float | None = None, env: Mapping[str, str] | None = None) -> float:
    """The lock timeout in seconds: ``value``, else ``LLM_PROXY_LOCK_TIMEOUT``, else 300."""
    if value is None:
        value = number_from_env(LOCK_TIMEOUT_ENV, float, DEFAULT_LOCK_TIMEOUT, "a number of seconds", env)
    if value < 0:
        raise ConfigError(f"the lock timeout must not be negative (got {value:g})")
    return value


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock``."""
    assert settings.database_path is not None
    path = settings.database_path
    return path.with_name(path.name + ".migrate.lock")


@contextmanager
def migration_lock(
    settings: Settings,
    connection: Connection | None,
    *,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> Iterator[float]:
    """Hold the migration lock for the body; yields the seconds spent waiting for it.

    For PostgreSQL the lock belongs to ``connection``: run the migrations on it.  SQLite
    locks a sidecar file and needs no connection.
    """
    seconds = lock_timeout(timeout)
    if settings.is_sqlite:
        with _sqlite_lock(settings, seconds, progress) as waited:
            yield waited
    elif settings.is_mysql:
        assert connection is not None, "the MySQL lock is held by the migrating connection"
        with _mysql_lock(settings, connection, seconds, progress) as waited:
            yield waited
    else:
        assert connection is not None, "the PostgreSQL lock is held by the migrating connection"
        with _advisory_lock(settings, connection, seconds, progress) as waited:
            yield waited


@contextmanager
def _sqlite_lock(settings: Settings, timeout: float, progress: Progress | None) -> Iterator[float]:
    path = lock_file(settings)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DatabaseConnectionError(
            f"cannot open the migration lock file {path}: {exc.strerror}",
            hint="the database directory must be writable to migrate",
        ) from None
    try:
        waited = _poll(lambda: _try_flock(fd), timeout, progress, settings, f"lock file {path}")
        try:
            yield waited
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _advisory_lock(
    settings: Settings, connection: Connection, timeout: float, progress: Progress | None
) -> Iterator[float]:
    def attempt() -> bool:
        sql = f"SELECT pg_try_advisory_lock({ADVISORY_LOCK_KEY})"
        taken = bool(connection.exec_driver_sql(sql).scalar())
        connection.commit()  # never sit idle in a transaction while polling
        return taken

    waited = _poll(attempt, timeout, progress, settings, f"advisory lock {ADVISORY_LOCK_KEY}")
    try:
        yield waited
    finally:
        _advisory_unlock(connection)


@contextmanager
def _mysql_lock(
    settings: Settings, connection: Connection, timeout: float, progress: Progress | None
) -> Iterator[float]:
    from llm_proxy_db.dialects import mysql

    what = f"GET_LOCK('{mysql.lock_name(connection)}') and GET_LOCK('{mysql.SERVICE_LOCK_NAME}')"
    waited = _poll(lambda: mysql.try_migration_lock(connection), timeout, progress, settings, what)
    try:
        yield waited
    finally:
        mysql.release_migration_lock(connection)


def _advisory_unlock(connection: Connection) -> None:
    """Release the lock; a dead connection has released it already."""
    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})")
        connection.commit()
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it; closing the connection finishes it


def _poll(
    attempt: Callable[[], bool],
    timeout: float,
    progress: Progress | None,
    settings: Settings,
    what: str,
) -> float:
    """Call ``attempt`` until it succeeds or ``timeout`` passes; returns the seconds waited."""
    started = time.monotonic()
    next_report = started
    while not attempt():
        now = time.monotonic()
        if now - started >= timeout:
            raise LockTimeoutError(
                f"gave up after {timeout:g}s {WAITING} on {settings.describe()} ({what})",
                hint=f"another migration is still running; wait for it, or raise the timeout "
                f"with --lock-timeout / {LOCK_TIMEOUT_ENV}",
            )
        if now >= next_report:
            _emit(progress, "lock_wait", now - started, WAITING)
            next_report = now + REPORT_EVERY
        time.sleep(POLL_INTERVAL)
    waited = time.monotonic() - started
    if waited > 0.0 and next_report > started:
        _emit(progress, "lock_acquired", waited, "took the migration lock")
    return waited


def _emit(progress: Progress | None, kind: str, elapsed: float, detail: str) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, "", "", elapsed, detail))
