"""What a MySQL-family server is part of: a Galera cluster, a replication primary or replica.

Primitives only, one or two statements each; what to do about them (refuse a write, lock every
node, pause a batched phase) is decided by their callers (:mod:`.cluster_lock`,
:mod:`.pacing`, the writability check before every change).

- **Galera** (MariaDB Galera Cluster, Percona XtraDB Cluster): ``wsrep_on`` is ON and the wsrep
  status variables say how many nodes form the cluster, whether this node belongs to the
  Primary component (``wsrep_cluster_status``) and is ``Synced``, which client addresses the
  members announce (``wsrep_incoming_addresses``), how DDL replicates (``wsrep_OSU_method``)
  and how far flow control holds writes (``wsrep_flow_control_paused``,
  ``wsrep_local_recv_queue``).  MySQL 8 has no wsrep variables: every query here copes with
  their absence (``SHOW ... LIKE`` returns no row).
- **Asynchronous replication**: ``SHOW ALL SLAVES STATUS`` (MariaDB; MySQL 8:
  ``SHOW REPLICA STATUS``) on a replica, ``SHOW SLAVE HOSTS`` on a primary (replicas started
  with ``report_host``/``report_port`` are listed), ``read_only`` / ``super_read_only`` /
  ``innodb_read_only`` on any server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Connection(Protocol):
    """What the reads below need: SQLAlchemy's ``Connection``, or :class:`DriverConnection`
    (a bare PyMySQL connection, for the fast ``migrate status``)."""

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Iterable[Any]: ...

    def rollback(self) -> None: ...


class _Row(tuple[Any, ...]):
    """A row as SQLAlchemy's: a tuple with ``_mapping`` (column name -> value)."""

    _mapping: dict[str, Any]


class DriverConnection:
    """A bare PyMySQL connection read as :class:`Connection` (``exec_driver_sql``, ``rollback``)
    and the errors a statement of the other server family raises (``driver_errors``)."""

    def __init__(self, connection: Any, errors: tuple[type[Exception], ...]) -> None:
        self._connection = connection
        self.driver_errors = errors

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> list[_Row]:
        with self._connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            names = [column[0] for column in cursor.description or ()]
            rows = []
            for values in cursor.fetchall():
                row = _Row(values)
                row._mapping = dict(zip(names, values, strict=True))
                rows.append(row)
            return rows

    def rollback(self) -> None:
        self._connection.rollback()


def _driver_errors(connection: Connection) -> tuple[type[Exception], ...]:
    """The errors a statement the server does not know raises on ``connection``."""
    errors: tuple[type[Exception], ...] | None = getattr(connection, "driver_errors", None)
    if errors is None:
        import sqlalchemy as sa

        errors = (sa.exc.DBAPIError,)
    return errors


_WSREP_STATUS = (
    "wsrep_cluster_size", "wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_incoming_addresses",
    "wsrep_flow_control_paused", "wsrep_local_recv_queue", "wsrep_ready",
)
_READ_ONLY_VARIABLES = ("read_only", "super_read_only", "innodb_read_only")


@dataclass(frozen=True)
class GaleraState:
    """One Galera node's view of its cluster."""

    size: int
    status: str  # wsrep_cluster_status: Primary, non-Primary, Disconnected
    state: str  # wsrep_local_state_comment: Synced, Donor/Desynced, Joining, ...
    addresses: tuple[str, ...]  # wsrep_incoming_addresses: the members' client addresses
    osu_method: str  # TOI, RSU, NBO
    flow_control_paused: float  # share of time paused by flow control since the last FLUSH STATUS
    recv_queue: int  # write sets received and not applied yet

    @property
    def writable(self) -> bool:
        """Whether a write here can commit: a Synced member of the Primary component."""
        return self.status == "Primary" and self.state == "Synced"

    def describe(self) -> str:
        """``Galera cluster: 3 nodes, Synced (Primary component, DDL as TOI)``."""
        component = "Primary component" if self.status == "Primary" else f"cluster status {self.status}"
        return f"Galera cluster: {self.size} nodes, {self.state} ({component}, DDL as {self.osu_method})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": "galera", "nodes": self.size, "cluster_status": self.status, "state": self.state,
            "addresses": list(self.addresses), "osu_method": self.osu_method,
            "flow_control_paused": self.flow_control_paused, "recv_queue": self.recv_queue,
        }


@dataclass(frozen=True)
class ReplicaChannel:
    """One replication channel of a replica (``SHOW ALL SLAVES STATUS`` row)."""

    name: str
    primary: str  # host:port of the server it replicates from
    io_running: bool
    sql_running: bool
    seconds_behind: int | None  # NULL while the SQL thread is stopped


@dataclass(frozen=True)
class Topology:
    """What the server of a connection is part of."""

    galera: GaleraState | None = None
    channels: tuple[ReplicaChannel, ...] = ()
    replicas: tuple[str, ...] = ()  # host:port of the replicas a primary lists (SHOW SLAVE HOSTS)
    read_only: tuple[str, ...] = field(default=())  # the read-only variables that are ON

    def describe(self) -> str | None:
        """One line for ``migrate status``; None for a lone server."""
        parts = [self.galera.describe()] if self.galera is not None else []
        if self.channels:
            parts.append("replica of " + ", ".join(_channel_text(channel) for channel in self.channels))
        if self.replicas:
            parts.append(f"primary of {len(self.replicas)} replica(s): {', '.join(self.replicas)}")
        if self.read_only:
            parts.append("read-only (" + ", ".join(f"{name}=ON" for name in self.read_only) + ")")
        return "; ".join(parts) or None

    def as_dict(self) -> dict[str, Any] | None:
        """JSON-ready form (``migrate status --json``'s ``topology``); None for a lone server."""
        if self.describe() is None:
            return None
        return {
            "summary": self.describe(),
            "galera": self.galera.as_dict() if self.galera is not None else None,
            "replica_of": [
                {"channel": c.name, "primary": c.primary, "io_running": c.io_running,
                 "sql_running": c.sql_running, "seconds_behind": c.seconds_behind}
                for c in self.channels
            ],
            "replicas": list(self.replicas),
            "read_only": list(self.read_only),
        }


def _channel_text(channel: ReplicaChannel) -> str:
    if not channel.sql_running or not channel.io_running:
        stopped = [name for name, running in (("IO", channel.io_running), ("SQL", channel.sql_running)) if not running]
        return f"{channel.primary} ({' and '.join(stopped)} thread stopped)"
    return f"{channel.primary} ({channel.seconds_behind} s behind)"


def _status_values(connection: Connection, names: tuple[str, ...], scope: str = "STATUS") -> dict[str, str]:
    rows = connection.exec_driver_sql(f"SHOW GLOBAL {scope} WHERE Variable_name IN ({', '.join(['%s'] * len(names))})",
                                      names)
    return {str(name).lower(): "" if value is None else str(value) for name, value in rows}


def galera_state(connection: Connection) -> GaleraState | None:
    """The node's Galera facts, or None when wsrep is off (or unknown: MySQL 8)."""
    variables = _status_values(connection, ("wsrep_on", "wsrep_osu_method"), "VARIABLES")
    if variables.get("wsrep_on", "OFF").upper() != "ON":
        return None
    status = _status_values(connection, _WSREP_STATUS)
    addresses = tuple(part.strip() for part in status.get("wsrep_incoming_addresses", "").split(",") if part.strip())
    return GaleraState(
        size=int(status.get("wsrep_cluster_size") or 0),
        status=status.get("wsrep_cluster_status", "") or "unknown",
        state=status.get("wsrep_local_state_comment", "") or "unknown",
        addresses=addresses,
        osu_method=variables.get("wsrep_osu_method", "") or "TOI",
        flow_control_paused=float(status.get("wsrep_flow_control_paused") or 0.0),
        recv_queue=int(status.get("wsrep_local_recv_queue") or 0),
    )


def replica_channels(connection: Connection) -> tuple[ReplicaChannel, ...]:
    """The replication channels this server replicates through (none on a primary)."""
    for statement in ("SHOW ALL SLAVES STATUS", "SHOW REPLICA STATUS"):
        try:
            result = connection.exec_driver_sql(statement)
        except _driver_errors(connection):
            continue  # the other server family's spelling
        return tuple(_channel(dict(row._mapping)) for row in result)
    return ()


def _channel(row: dict[str, Any]) -> ReplicaChannel:
    def pick(*names: str) -> Any:
        return next((row[name] for name in names if name in row), None)

    behind = pick("Seconds_Behind_Master", "Seconds_Behind_Source")
    host, port = pick("Master_Host", "Source_Host"), pick("Master_Port", "Source_Port")
    return ReplicaChannel(
        name=str(pick("Connection_name", "Channel_Name") or ""),
        primary=f"{host}:{port}",
        io_running=str(pick("Slave_IO_Running", "Replica_IO_Running")) == "Yes",
        sql_running=str(pick("Slave_SQL_Running", "Replica_SQL_Running")) == "Yes",
        seconds_behind=None if behind is None else int(behind),
    )


def listed_replicas(connection: Connection) -> tuple[str, ...]:
    """``host:port`` of every replica registered with this primary (``SHOW SLAVE HOSTS``: only
    replicas started with ``report_host`` appear; the others must be named)."""
    for statement in ("SHOW SLAVE HOSTS", "SHOW REPLICAS"):
        try:
            rows = [dict(row._mapping) for row in connection.exec_driver_sql(statement)]
        except _driver_errors(connection):
            continue
        return tuple(f"{row.get('Host')}:{row.get('Port')}" for row in rows if row.get("Host"))
    return ()


def read_only_variables(connection: Connection) -> tuple[str, ...]:
    """The read-only switches that are ON here (``read_only``, ``super_read_only``, ``innodb_read_only``)."""
    values = _status_values(connection, _READ_ONLY_VARIABLES, "VARIABLES")
    return tuple(name for name in _READ_ONLY_VARIABLES if values.get(name, "OFF").upper() in ("ON", "1"))


def topology(connection: Connection) -> Topology:
    """Everything above, read now (a handful of SHOW statements; nothing is written)."""
    result = Topology(
        galera=galera_state(connection),
        channels=replica_channels(connection),
        replicas=listed_replicas(connection),
        read_only=read_only_variables(connection),
    )
    connection.rollback()
    return result


def unwritable_reason(facts: Topology) -> str | None:
    """Why a schema change must not start through this server, or None when it may.

    A read-only server or a replicating replica (even one whose ``read_only`` is off: a change
    written there diverges from its primary and breaks replication; a channel whose threads are
    both stopped, as a promoted former replica keeps it, does not count) is told to point at the primary; a Galera
    node outside the Primary component or not Synced is told to point at a Synced node.
    """
    replicating = [channel for channel in facts.channels if channel.io_running or channel.sql_running]
    if facts.read_only or replicating:
        why = [f"{name}=ON" for name in facts.read_only]
        why += [f"it replicates from {channel.primary}" for channel in replicating]
        return f"this server is read-only (a replica?): {', '.join(why)}"
    galera = facts.galera
    if galera is not None and not galera.writable:
        return (
            f"this Galera node is {galera.state} in a cluster whose status here is {galera.status} "
            "(a write needs a Synced node of the Primary component)"
        )
    return None


def galera_nodes(galera: GaleraState, override: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The client addresses (``host:port``) of every node: ``override`` when given
    (``LLM_PROXY_GALERA_NODES``), else what the nodes announce."""
    return override or galera.addresses


def parse_gtid_position(text: str | None) -> dict[tuple[int, int], int]:
    """A MariaDB GTID position (``0-71-120,1-72-9``) as ``{(domain, server): seq_no}``.

    Sequence numbers grow within a domain; a replica has replayed a primary's position when,
    for each domain of it, its own position in that domain is at least as far.
    """
    position: dict[tuple[int, int], int] = {}
    for part in (text or "").replace("\n", "").split(","):
        pieces = part.strip().split("-")
        if len(pieces) == 3 and all(piece.isdigit() for piece in pieces):
            domain, server, seq = (int(piece) for piece in pieces)
            position[(domain, server)] = seq
    return position


def reached(replica: dict[tuple[int, int], int], primary: dict[tuple[int, int], int]) -> bool:
    """Whether the ``replica`` position has reached the ``primary`` one (per domain)."""
    def by_domain(position: dict[tuple[int, int], int]) -> dict[int, int]:
        domains: dict[int, int] = {}
        for (domain, _server), seq in position.items():
            domains[domain] = max(seq, domains.get(domain, 0))
        return domains

    theirs = by_domain(replica)
    return all(theirs.get(domain, -1) >= seq for domain, seq in by_domain(primary).items())

