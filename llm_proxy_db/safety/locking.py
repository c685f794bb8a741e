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

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Connection

from llm_proxy_db.config.parsing import DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_ENV, parse_seconds
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for, sqlite
from llm_proxy_db.dialects.locks import (  # noqa: F401 (the lock vocabulary, here for callers)
    POLL_INTERVAL,
    REPORT_EVERY,
    SERVICE_WAITING,
    SERVICE_WAITING_SERVER_WIDE,
    WAITING,
    poll,
)
from llm_proxy_db.events import Progress


def lock_timeout(value: float | None = None, env: Mapping[str, str] | None = None) -> float:
    """The lock timeout in seconds: ``value``, else ``LLM_PROXY_LOCK_TIMEOUT``, else 300."""
    if value is not None:
        return parse_seconds("--lock-timeout", value)
    raw = (os.environ if env is None else env).get(LOCK_TIMEOUT_ENV, "")
    return parse_seconds(LOCK_TIMEOUT_ENV, raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock`` (see :mod:`llm_proxy_db.dialects.sqlite`)."""
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
    with dialect_for(settings).migration_lock(settings, connection, lock_timeout(timeout), progress) as waited:
        yield waited
