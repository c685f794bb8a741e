"""Dropping a large table of our own on Galera without holding every node's commits.

Under total order isolation a ``DROP TABLE`` runs on every node at the same point of the
replication stream, and each node commits nothing else until the drop has ended there.  How
long that takes grows with the table's file: measured on the three loopback nodes of
``.ci/topology/mariadb.sh``, dropping a 2M-row copy of ``audit_events`` held the service's
request-counter updates on every node for 0.65-0.93 s (1.1 s with a migration running), a 100-row
table for nothing measurable.

A table only the migration uses (``_t_old`` after a shadow copy's swap) is therefore dropped on
each node by itself, with replication switched off for that one statement
(``SET SESSION wsrep_on = OFF``; the drop of a table nobody else reads changes no row the
cluster certifies): the other nodes first, each after a causal read (``wsrep_sync_wait``) so
that the swap's ``RENAME`` has been applied there, our own node last.  Then the same
``DROP TABLE IF EXISTS`` is sent once more, replicated (:func:`drop_everywhere`): a no-op of a
few milliseconds where the table is gone, it catches a node that was not in the cluster
(it replays the statement when it rejoins) and is the safety net for one that applied the swap
after our drop.  A run killed in between leaves the table on our node, where ``status`` names it
and the next run drops it again.  Before every swap the replicated drop is sent too, so no
node still holding ``_t_old`` from a cut-short drop meets the swap's ``RENAME`` (which would fail
there alone: the node leaves the cluster, or with ``wsrep_ignore_apply_errors`` ignoring DDL
errors, keeps the old schema).

The plain TOI drop (``IF EXISTS``) is kept when the table is small (:data:`LOCAL_DROP_BYTES`),
when not every node of the cluster is reached as a Synced member of it (an arbitrator counts as
a member with no SQL session; a unix-socket URL reaches only our node), and when a session may
not switch replication off (that needs ``SUPER`` on MariaDB 10.11, measured): every session is
asked before anything is dropped.
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
    """Drop ``table`` on every node by itself, ours last, then once more replicated
    (module docstring); ``nodes`` are sessions on the cluster's nodes (ours may be among them).
    False, with nothing dropped, when the plain drop should be used instead: a small table,
    a node not reached (or a session that is no Synced member of our cluster), a session
    without the right to switch replication off."""
    if _table_bytes(connection, table) < LOCAL_DROP_BYTES:
        return False
    others = _other_members(connection, nodes)
    if others is None or not all(_may_switch_off(session) for session in [*others, connection]):
        return False
    for session in others:
        _caught_up(session)  # the swap's RENAME applied there: the drop finds the table
        _drop_here(session, table)
    _drop_here(connection, table)
    drop_everywhere(connection, table)
    return True


def drop_everywhere(connection: Connection, table: str) -> None:
    """The replicated ``DROP TABLE IF EXISTS`` (TOI): it takes its place in the cluster's order,
    so every node runs it after what came before, a node that applies the swap late or
    rejoins by IST included.  Where the table is gone already it costs a few milliseconds;
    before a swap it clears a copy of ``_t_old`` a cut-short drop left on another node, which
    would fail the swap's ``RENAME`` there alone."""
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")


def _other_members(connection: Connection, nodes: Sequence[Connection]) -> list[Connection] | None:
    """The sessions on the cluster's other nodes, or None when they are not all there: each
    a Synced member of our cluster's Primary component (a server outside it, a node of
    another cluster or one not synced does not count), one per node."""
    ours = _facts(connection)
    size = int(ours.get("wsrep_cluster_size") or 0)
    others: dict[str, Connection] = {}
    for session in nodes:
        facts = _facts(session)
        index = facts.get("wsrep_local_index", "")
        member = (
            facts.get("wsrep_cluster_state_uuid") == ours.get("wsrep_cluster_state_uuid")
            and facts.get("wsrep_cluster_status") == "Primary"
            and facts.get("wsrep_local_state_comment") == "Synced"
            and index.isdigit() and int(index) < size
        )
        if member and index != ours.get("wsrep_local_index"):
            others[index] = session
    return list(others.values()) if size > 1 and len(others) == size - 1 else None


def _may_switch_off(session: Connection) -> bool:
    """Whether this session may switch replication off (tried, and switched back on)."""
    session.exec_driver_sql("COMMIT")
    try:
        session.exec_driver_sql("SET SESSION wsrep_on = OFF")
    except Exception as exc:  # noqa: BLE001 - the driver's error, classified by its code
        if error_code(exc) in NOT_ALLOWED:
            return False
        raise
    session.exec_driver_sql("SET SESSION wsrep_on = ON")
    return True


def _caught_up(session: Connection) -> None:
    """Wait until this node has applied what the cluster had ordered (a causal read)."""
    previous = session.exec_driver_sql("SELECT @@SESSION.wsrep_sync_wait").scalar()
    session.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
    try:
        session.exec_driver_sql("SELECT 1").scalar()
    finally:
        session.exec_driver_sql(f"SET SESSION wsrep_sync_wait = {int(previous or 0)}")
        session.exec_driver_sql("COMMIT")


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


def _facts(session: Connection) -> dict[str, str]:
    rows = session.exec_driver_sql(
        "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_state_uuid', 'wsrep_cluster_status', "
        "'wsrep_local_state_comment', 'wsrep_local_index', 'wsrep_cluster_size')"
    ).fetchall()
    session.exec_driver_sql("COMMIT")
    return {str(name): str(value) for name, value in rows}
