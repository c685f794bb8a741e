"""The MySQL migration lock: ``GET_LOCK`` for ours then the service's name (server-wide names),
on the migrating connection of a lone server, on every node of a Galera cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from llm_proxy_db.config.parsing import env_settings
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.locks import SERVICE_WAITING_SERVER_WIDE, poll
from llm_proxy_db.dialects.mysql import cluster_lock
from llm_proxy_db.dialects.mysql.connection import create_engine
from llm_proxy_db.dialects.mysql.writable import refuse_unwritable

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

    Taken one after the other, so a wait for a starting service is reported as such.  First
    the server must take writes (:func:`.topology.refuse_unwritable`, exit 3, before any lock).
    On a Galera cluster both names are held on every node (:mod:`.cluster_lock`: ``GET_LOCK``
    is per node) and the migrating session reads what the other nodes committed
    (``wsrep_sync_wait``), so a migrator that waited for another one sees its revisions.
    """
    assert connection is not None, "the MySQL lock is held by the migrating connection"
    facts = refuse_unwritable(settings, connection)
    nodes = cluster_lock.node_sessions(connection, facts.galera, env_settings().galera_nodes, _node_opener(settings))
    where = f" on {len(nodes.sessions)} Galera nodes" if nodes.cluster_wide else ""
    ours, started = lock_name(connection), time.monotonic()
    try:
        poll(lambda: cluster_lock.take_everywhere(nodes.sessions, ours), timeout, progress, settings,
             f"GET_LOCK('{ours}'){where}")
        left = max(timeout - (time.monotonic() - started), 0.0)
        service = f"GET_LOCK('{SERVICE_LOCK_NAME}'){where}"
        poll(lambda: cluster_lock.take_everywhere(nodes.sessions, SERVICE_LOCK_NAME), left, progress,
             settings, service, SERVICE_WAITING_SERVER_WIDE)
        if nodes.cluster_wide:
            connection.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
        yield time.monotonic() - started
    finally:
        for name in (SERVICE_LOCK_NAME, ours):
            cluster_lock.release_everywhere(nodes.sessions, name)
        nodes.close()


def _node_opener(settings: Settings) -> Callable[[str, int], Connection]:
    """Opens a session on another node with the settings' user, password, database and options."""
    def open_node(host: str, port: int) -> Connection:
        url = settings.sqlalchemy_url().set(host=host, port=port)
        return create_engine(replace(settings, database_url=url)).connect()

    return open_node


def service_migrating(connection: Connection) -> bool:
    """Whether another session holds ``GET_LOCK('llm-proxy-migrations')`` (a service's goose
    run, whose files MySQL commits statement by statement; the name is server-wide)."""
    holder, own = connection.exec_driver_sql(
        "SELECT IS_USED_LOCK(%s), CONNECTION_ID()", (SERVICE_LOCK_NAME,)
    ).one()
    ours = holder is None or holder == own or cluster_lock.held_by_us(connection, SERVICE_LOCK_NAME, holder)
    connection.commit()
    return not ours


def lock_name(connection: Connection) -> str:
    """Our lock's name for the database of ``connection`` (at most 64 characters, MySQL's limit)."""
    return f"{LOCK_NAME}:{connection.engine.url.database}"[:64]
