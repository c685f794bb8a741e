"""The PostgreSQL migration lock: our advisory key, then the service's, on the migrating connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.locks import SERVICE_WAITING, WAITING, poll

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.events import Progress


# A fixed 64-bit key for pg_advisory_lock: "llm-proxy-db migrations" (advisory locks are
# scoped to one database, so every llm-proxy database has its own).
ADVISORY_LOCK_KEY = 0x6C6C6D70726F7879  # b"llmproxy"


# The service's own migration lock (reference section 3): it tries
# pg_try_advisory_lock(3141592653) 10 times 100 ms apart at every start.
SERVICE_LOCK_KEY = 3141592653


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """Our key, then the service's: always in this order, so two migrators cannot deadlock
    (the service only tries its key, it never waits while holding one).  Both belong to
    ``connection``: run the migrations on it."""
    assert connection is not None, "the PostgreSQL lock is held by the migrating connection"
    started = time.monotonic()
    with _one_advisory_lock(settings, connection, ADVISORY_LOCK_KEY, timeout, progress, WAITING):
        left = max(timeout - (time.monotonic() - started), 0.0)
        with _one_advisory_lock(settings, connection, SERVICE_LOCK_KEY, left, progress, SERVICE_WAITING):
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

    poll(attempt, timeout, progress, settings, f"advisory lock {key}", waiting)
    try:
        yield
    finally:
        _advisory_unlock(connection, key)


def _advisory_unlock(connection: Connection, key: int) -> None:
    """Release the lock; a dead connection has released it already."""
    import sqlalchemy as sa

    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
        connection.commit()
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it; closing the connection finishes it
