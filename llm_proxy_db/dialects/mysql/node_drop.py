"""Dropping a large table of our own on Galera without holding every node's commits.

Under total order isolation a ``DROP TABLE`` runs on every node at the same point of the
replication stream, and each node commits nothing else until the drop has ended there.  How
long that takes grows with the table's file: measured on the three loopback nodes of
``.ci/topology/mariadb.sh``, dropping a 2M-row copy of ``audit_events`` held the service's
request-counter updates on every node for 0.65 s (1.1 s with a migration running), a 100-row
table for nothing measurable.

A table only the migration uses (``_t_old`` after a shadow copy's swap) is therefore dropped on
each node by itself, with replication switched off for that one statement
(``SET SESSION wsrep_on = OFF``; the drop of a table nobody else reads changes no row the
cluster certifies): the other nodes first, our own node last.  A run killed in between leaves
the table on our node, where ``status`` names it and the next run drops it again everywhere
(``IF EXISTS``).  A copy left on another node only (a later run went through a node that had
dropped its copy) is dropped by :func:`clear_stale` before a swap would create the name again
under TOI, where a node holding it would fail the ``RENAME`` alone and leave the cluster.

The plain TOI drop is kept when the table is small (:data:`LOCAL_DROP_BYTES`), when not every
node of the cluster can be reached, and when the user may not switch replication off for its
session (that needs ``SUPER`` on MariaDB 10.11, measured; the refusal comes before anything is
dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from llm_proxy_db.dialects.mysql.pacing import error_code

# Tables (data and indexes) below this size are dropped under TOI: a drop this small holds
# the nodes for a few milliseconds.
LOCAL_DROP_BYTES = 32 * 1024 * 1024
# ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR: no privilege
# to switch wsrep_on off.
NOT_ALLOWED = {1227, 1044, 1045}


def drop_node_by_node(connection: Connection, table: str, nodes: Sequence[Connection]) -> bool:
    """Drop ``table`` on every node by itself, ours last (module docstring); ``nodes`` are
    sessions on the cluster's nodes (ours may be among them).  False, with nothing dropped,
    when the plain drop should be used instead: a small table, a node not reached, no right
    to switch replication off."""
    if _table_bytes(connection, table) < LOCAL_DROP_BYTES:
        return False
    others = _other_nodes(connection, nodes)
    if others is None:
        return False
    first, *rest = [*others, connection]
    try:
        _drop_here(first, table)
    except Exception as exc:  # noqa: BLE001 - the driver's error, classified by its code
        if error_code(exc) in NOT_ALLOWED:
            return False
        raise
    for session in rest:
        _drop_here(session, table)
    return True


def clear_stale(connection: Connection, table: str, nodes: Sequence[Connection]) -> list[int]:
    """Drop ``table`` on the other nodes that still hold it while ours does not (a node-by-node
    drop cut short); the indexes (``wsrep_local_index``) of the nodes it was dropped on."""
    if _exists(connection, table):
        return []
    cleared = []
    for session in _other_nodes(connection, nodes) or []:
        if _exists(session, table):
            _drop_here(session, table)
            cleared.append(_local_index(session))
    return cleared


def _other_nodes(connection: Connection, nodes: Sequence[Connection]) -> list[Connection] | None:
    """The sessions on the cluster's other nodes, or None when they are not all there."""
    ours = _local_index(connection)
    size = int(_status(connection, "wsrep_cluster_size") or 0)
    others = {index: session for session in nodes if (index := _local_index(session)) != ours}
    return list(others.values()) if len(others) == size - 1 else None


def _drop_here(session: Connection, table: str) -> None:
    """``DROP TABLE IF EXISTS`` on this node only."""
    session.exec_driver_sql("COMMIT")  # wsrep_on cannot change inside a transaction
    session.exec_driver_sql("SET SESSION wsrep_on = OFF")
    try:
        session.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        session.exec_driver_sql("SET SESSION wsrep_on = ON")


def _table_bytes(connection: Connection, table: str) -> int:
    value = connection.exec_driver_sql(
        "SELECT COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    ).scalar()
    return int(value or 0)


def _exists(session: Connection, table: str) -> bool:
    return bool(session.exec_driver_sql(
        "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    ).scalar())


def _local_index(session: Connection) -> int:
    return int(_status(session, "wsrep_local_index") or -1)


def _status(session: Connection, name: str) -> str:
    row = session.exec_driver_sql(f"SHOW STATUS LIKE '{name}'").first()
    session.exec_driver_sql("COMMIT")
    return str(row[1]) if row is not None else ""
