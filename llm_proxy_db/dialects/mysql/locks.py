"""The MySQL migration lock: ``GET_LOCK`` on the migrating connection, ours then the service's (server-wide names)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.locks import SERVICE_WAITING_SERVER_WIDE, poll

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.events import Progress


# Our own lock (named per database: GET_LOCK names are server-wide), and the service's
# (server-wide, its own choice): holding both makes its replicas' goose runners wait.
LOCK_NAME = "llm-proxy-db-migrations"
SERVICE_LOCK_NAME = "llm-proxy-migrations"


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """Ours, then the service's (as on PostgreSQL), held for the body; yields the wait.

    Taken one after the other, so a wait for a starting service is reported as such."""
    assert connection is not None, "the MySQL lock is held by the migrating connection"
    started = time.monotonic()
    try:
        poll(lambda: try_own_lock(connection), timeout, progress, settings, f"GET_LOCK('{lock_name(connection)}')")
        left = max(timeout - (time.monotonic() - started), 0.0)
        service = f"GET_LOCK('{SERVICE_LOCK_NAME}')"
        poll(lambda: try_service_lock(connection), left, progress, settings, service, SERVICE_WAITING_SERVER_WIDE)
        yield time.monotonic() - started
    finally:
        release_migration_lock(connection)


def try_migration_lock(connection: Connection) -> bool:
    """Take ``GET_LOCK`` for our name and the service's, without waiting; True when both are held.

    Named locks belong to the session: the server frees them when the connection dies.
    """
    ours = lock_name(connection)
    if not _get_lock(connection, ours):
        return False
    if _get_lock(connection, SERVICE_LOCK_NAME):
        return True
    _release(connection, ours)
    return False


def try_own_lock(connection: Connection) -> bool:
    """Take our ``GET_LOCK`` (named after the database), without waiting."""
    return _get_lock(connection, lock_name(connection))


def try_service_lock(connection: Connection) -> bool:
    """Take the service's ``GET_LOCK('llm-proxy-migrations')``, without waiting; while we hold
    it, a starting replica's goose runner waits (and gives up after its 10 tries)."""
    return _get_lock(connection, SERVICE_LOCK_NAME)


def lock_name(connection: Connection) -> str:
    """Our lock's name for the database of ``connection`` (at most 64 characters, MySQL's limit)."""
    return f"{LOCK_NAME}:{connection.engine.url.database}"[:64]


def release_migration_lock(connection: Connection) -> None:
    """Release both named locks; a dead connection has released them already."""
    import sqlalchemy as sa

    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        _release(connection, SERVICE_LOCK_NAME)
        _release(connection, lock_name(connection))
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it


def _get_lock(connection: Connection, name: str) -> bool:
    taken = connection.exec_driver_sql("SELECT GET_LOCK(%s, 0)", (name,)).scalar() == 1
    connection.commit()  # never sit in a transaction while polling
    return taken


def _release(connection: Connection, name: str) -> None:
    connection.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
    connection.commit()
