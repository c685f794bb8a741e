"""Named locks (``GET_LOCK``) held on every node of a Galera cluster at once.

``GET_LOCK`` belongs to the node that grants it: Galera does not replicate it.  A migrator
connected to node 1 holding ``GET_LOCK('llm-proxy-migrations')`` there does not stop a
service starting on node 2 from taking the same name, nor a second migrator on node 2 from
taking ours.  So on a cluster each lock name is taken on **every node** the cluster lists in
``wsrep_incoming_addresses`` (or ``LLM_PROXY_GALERA_NODES``), through one session per node
opened with the same credentials, and held until the schema change ends:

- the nodes are locked in one order (their sorted addresses), each attempt without waiting
  (``GET_LOCK(name, 0)``), and an attempt that finds one node taken releases what it took:
  two migrators never hold parts of the set against each other, the one that took the first
  node goes on, the other retries;
- a node that cannot be reached is refused before anything is locked or changed (exit 3): a
  service starting there would not see the lock.  A node that left the cluster is not listed
  (it cannot take writes either, being outside the Primary component);
- the sessions die with the process, and the server frees their locks, as for one server.

A cluster-replicated lock row was the other choice; it excludes other migrators but not the
service, whose start-up takes ``GET_LOCK('llm-proxy-migrations')`` on the node it connects to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_proxy_db.config.parsing import GALERA_NODES_ENV
from llm_proxy_db.dialects.mysql.topology import galera_nodes
from llm_proxy_db.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.dialects.mysql.topology import GaleraState

#: Opens a session on the node at ``host``, ``port`` (same user, password, database, options).
NodeOpener = Callable[[str, int], "Connection"]


@dataclass
class NodeSessions:
    """The sessions that hold the locks: ``(address, session)`` in locking order."""

    sessions: list[tuple[str, Connection]]
    opened: list[Connection] = field(default_factory=list)  # ours to close

    @property
    def cluster_wide(self) -> bool:
        """Whether the locks are taken on more than the migrating connection's server."""
        return bool(self.opened)

    def close(self) -> None:
        """Close the sessions opened for the locks (their locks go with them)."""
        for session in self.opened:
            with suppress(Exception):  # a dead session has freed its locks already
                session.close()
        self.opened.clear()


def node_sessions(
    connection: Connection, galera: GaleraState | None, override: tuple[str, ...], open_node: NodeOpener
) -> NodeSessions:
    """The sessions to lock through: ``connection`` alone on a lone server, else one new
    session per node (sorted addresses).  DatabaseConnectionError when a node is out of reach."""
    if galera is None or galera.size <= 1:
        return NodeSessions([("", connection)])
    addresses = sorted(set(galera_nodes(galera, override)))
    if not addresses:
        raise _unreachable("(none listed)", f"wsrep_incoming_addresses is empty; set {GALERA_NODES_ENV}")
    result = NodeSessions([])
    try:
        for address in addresses:
            host, port = _host_port(address)
            session = _open(open_node, address, host, port)
            result.opened.append(session)
            result.sessions.append((address, session))
    except BaseException:
        result.close()
        raise
    return result


def _open(open_node: NodeOpener, address: str, host: str, port: int) -> Connection:
    import sqlalchemy as sa

    if host in ("", "0.0.0.0", "::", "AUTO"):
        raise _unreachable(address, "the node announces no address a client can use")
    try:
        return open_node(host, port)
    except sa.exc.DBAPIError as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise _unreachable(address, detail[0] if detail else type(exc).__name__) from None


def _unreachable(address: str, reason: str) -> DatabaseConnectionError:
    return DatabaseConnectionError(
        f"cannot reach Galera node {address} to take the migration lock there: {reason}; a "
        "service starting on that node would not see the lock, so nothing was locked or changed",
        hint="the migrator must reach every node of the cluster with the same user and password "
        f"(docs/operations.md, 'Galera and MySQL replicas'); set {GALERA_NODES_ENV}=host:port,... "
        "when the addresses the nodes announce (wsrep_incoming_addresses) are not reachable from here",
    )


def _host_port(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return address.strip("[]"), 3306
    return host.strip("[]"), int(port)


def take_everywhere(sessions: Sequence[tuple[str, Connection]], name: str) -> bool:
    """``GET_LOCK(name, 0)`` through every session in order; all or none is held afterwards."""
    taken: list[Connection] = []
    for _address, session in sessions:
        if not get_lock(session, name):
            for held in taken:
                release(session=held, name=name)
            return False
        taken.append(session)
    return True


def release_everywhere(sessions: Sequence[tuple[str, Connection]], name: str) -> None:
    """``RELEASE_LOCK(name)`` through every session still alive."""
    for _address, session in sessions:
        release(session, name)


# (lock name, node "host:port", connection id) of every lock this process holds through a node
# session: the migrating connection must not wait for the service's lock that we hold ourselves.
HELD_BY_US: set[tuple[str, str, int]] = set()


def get_lock(session: Connection, name: str) -> bool:
    """``GET_LOCK(name, 0)`` (no wait); never leaves a transaction open while polling."""
    taken, session_id, node = session.exec_driver_sql(
        "SELECT GET_LOCK(%s, 0), CONNECTION_ID(), CONCAT(@@hostname, ':', @@port)", (name,)
    ).one()
    session.commit()
    if taken == 1:
        HELD_BY_US.add((name, str(node), int(session_id)))
    return taken == 1


def held_by_us(connection: Connection, name: str, holder: int) -> bool:
    """Whether ``holder`` (a connection id on ``connection``'s node) is one of our node sessions."""
    node = connection.exec_driver_sql("SELECT CONCAT(@@hostname, ':', @@port)").scalar()
    return (name, str(node), int(holder)) in HELD_BY_US


def release(session: Connection, name: str) -> None:
    """``RELEASE_LOCK(name)``; a dead session has released it already."""
    import sqlalchemy as sa

    if session.closed or session.invalidated:
        return  # its lock went with it (a stale HELD_BY_US entry names a dead connection id)
    try:
        session.rollback()
        session_id = session.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        HELD_BY_US.difference_update({entry for entry in HELD_BY_US if entry[0] == name and entry[2] == session_id})
        session.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
        session.commit()
    except sa.exc.DBAPIError:
        pass
