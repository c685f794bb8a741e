"""One migrator at a time, with locks the operating system or the server frees on death.

PostgreSQL: a session-level advisory lock taken on the very connection that runs the
migrations, and then the service's own migration lock (its goose runner's advisory key), so a
replica of the service that starts meanwhile fails its start cleanly instead of replaying goose
files on a half-migrated schema, and a migration waits for a service that is starting.  Both
survive the per-revision commits and are released when that connection closes, including
when the process is killed.  SQLite: ``flock`` on a sidecar file (``<database>.migrate.lock``);
the kernel releases it when the process dies.  There are no lock rows that could go stale.
MySQL: ``GET_LOCK`` on the migrating connection, for our own name and the service's
(``llm-proxy-migrations``, so its replicas' goose runners wait); see :mod:`llm_proxy_db.dialects.mysql`.
Waiters poll until a timeout, reporting that they wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.errors import DatabaseConnectionError, LockTimeoutError
from llm_proxy_db.executor import Progress, ProgressEvent
from llm_proxy_db.files import match_database, real_path
from llm_proxy_db.settings import Settings
from llm_proxy_db.settings_parsing import DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_ENV, parse_seconds

POLL_INTERVAL = 0.1
REPORT_EVERY = 5.0
# A fixed 64-bit key for pg_advisory_lock: "llm-proxy-db migrations" (advisory locks are
# scoped to one database, so every llm-proxy database has its own).
ADVISORY_LOCK_KEY = 0x6C6C6D70726F7879  # b"llmproxy"
WAITING = "waiting for the migration lock held by another process"
# The service's own migration lock (reference section 3), per dialect: it tries
# pg_try_advisory_lock(3141592653) 10 times 100 ms apart at every start.
SERVICE_LOCK_KEYS = {"postgresql": 3141592653}
SERVICE_WAITING = "waiting for the llm-proxy service's migration lock (a service is starting)"


def lock_timeout(value: float | None = None, env: Mapping[str, str] | None = None) -> float:
    """The lock timeout in seconds: ``value``, else ``LLM_PROXY_LOCK_TIMEOUT``, else 300."""
    if value is not None:
        return parse_seconds("--lock-timeout", value)
    raw = (os.environ if env is None else env).get(LOCK_TIMEOUT_ENV, "")
    return parse_seconds(LOCK_TIMEOUT_ENV, raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock``, beside its real path.

    A migrator started through a symlink and one started through the real path lock the
    same file.
    """
    assert settings.database_path is not None
    path = real_path(settings.database_path)
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
        fd = _open_lock_file(path, real_path(settings.database_path or path))
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


def _open_lock_file(path: Path, database: Path) -> int:
    """Open (or create, with the database's mode and owner) the lock file.

    ``flock`` needs no write access, so a lock file another user created (root, say) is
    opened read-only: any user who may write the database can take the lock.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "not a regular file") from None
        return fd
    with contextlib.suppress(OSError):  # a lock file with our own mode still works for us
        match_database(path, database)
    return fd


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
    """Our key, then the service's: always in this order, so two migrators cannot deadlock
    (the service only tries its key, it never waits while holding one)."""
    started = time.monotonic()
    with _one_advisory_lock(settings, connection, ADVISORY_LOCK_KEY, timeout, progress, WAITING):
        service_key = SERVICE_LOCK_KEYS.get(connection.dialect.name)
        left = max(timeout - (time.monotonic() - started), 0.0)
        service_lock = (
            _one_advisory_lock(settings, connection, service_key, left, progress, SERVICE_WAITING)
            if service_key is not None
            else contextlib.nullcontext()
        )
        with service_lock:
            yield time.monotonic() - started


@contextmanager
def _one_advisory_lock(
    settings: Settings,
    connection: Connection,
    key: int,
    timeout: float,
    progress: Progress | None,
    waiting: str,
) -> Iterator[None]:
    def attempt() -> bool:
        taken = bool(connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
        connection.commit()  # never sit idle in a transaction while polling
        return taken

    _poll(attempt, timeout, progress, settings, f"advisory lock {key}", waiting)
    try:
        yield
    finally:
        _advisory_unlock(connection, key)


@contextmanager
def _mysql_lock(
    settings: Settings, connection: Connection, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """Ours, then the service's (as on PostgreSQL), so a wait for a starting service is
    reported as such."""
    from llm_proxy_db.dialects import mysql

    started = time.monotonic()
    try:
        ours = f"GET_LOCK('{mysql.lock_name(connection)}')"
        _poll(lambda: mysql.try_own_lock(connection), timeout, progress, settings, ours)
        left = max(timeout - (time.monotonic() - started), 0.0)
        service = f"GET_LOCK('{mysql.SERVICE_LOCK_NAME}')"
        _poll(lambda: mysql.try_service_lock(connection), left, progress, settings, service, SERVICE_WAITING)
        yield time.monotonic() - started
    finally:
        mysql.release_migration_lock(connection)


def _advisory_unlock(connection: Connection, key: int) -> None:
    """Release the lock; a dead connection has released it already."""
    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
        connection.commit()
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it; closing the connection finishes it


def _poll(
    attempt: Callable[[], bool],
    timeout: float,
    progress: Progress | None,
    settings: Settings,
    what: str,
    waiting: str = WAITING,
) -> float:
    """Call ``attempt`` until it succeeds or ``timeout`` passes; returns the seconds waited."""
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
    return "a starting llm-proxy service (its goose runner)" if waiting == SERVICE_WAITING else (
        "another migration"
    )


def _emit(progress: Progress | None, kind: str, elapsed: float, detail: str) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, "", "", elapsed, detail))
