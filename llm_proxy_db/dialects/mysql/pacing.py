"""The pace of a batched phase on MySQL: retry a batch that lost a conflict, wait for replicas.

A batched fill or copy commits one short transaction per key range.  Two things outside the
batch decide whether the next one may run, and what to do when one fails:

- **Conflicts.**  Error 1213 (``ER_LOCK_DEADLOCK``) is InnoDB's deadlock victim on one server
  and, on Galera, a *certification conflict*: a service's write to the same rows committed
  first on another node, and our batch was aborted (at its statement or at ``COMMIT``).  The
  batch was rolled back whole; it is run again after a bounded, growing pause (at most
  :data:`MAX_CONFLICT_RETRIES` times), and the progress says so ("retrying batch after
  certification conflict (2)").  Every batch is idempotent (``WHERE column IS NULL``, or an
  upsert), so running it again is safe.
- **Lag.**  Before each batch :meth:`Pacer.wait` measures how far the others are behind and
  waits while it is too far (``LLM_PROXY_MAX_REPLICA_LAG`` seconds, default 1, 0 = off),
  saying so ("paused: replica lag 2 s (127.0.0.1:33072)"):

  * *asynchronous replicas* of the server we write to, found with ``SHOW SLAVE HOSTS`` (those
    started with ``report_host``) plus the ones named in ``LLM_PROXY_MYSQL_REPLICA_URLS``
    (``host:port`` with our credentials, or full ``mysql://`` URLs).  The lag is the larger of
    ``Seconds_Behind_Master`` (NULL while the SQL thread is stopped: counted as lagging
    without bound) and a **GTID clock**: the primary's ``@@gtid_binlog_pos`` is sampled before
    each batch, and a replica whose ``@@gtid_slave_pos`` has not reached a sample taken *t*
    seconds ago is at least *t* behind.  ``Seconds_Behind_Master`` alone is not enough: it is
    whole seconds, measured from the events the replica *received*, so a replica whose IO
    thread is behind (or a network stall) shows 0, and it says nothing while the replica is
    idle; the GTID comparison sees every transaction we committed that the replica has not
    applied, and needs no heartbeat table (which would add writes of its own).
  * *Galera*: flow control plays that role.  The batch waits while any node's receive queue
    (``wsrep_local_recv_queue``) is above :data:`GALERA_QUEUE_LIMIT` write sets, or while the
    cluster spent time paused by flow control (``wsrep_flow_control_paused_ns`` rising) since
    the previous check.

The replicas and nodes are reached with the migrating session's user and password.  One that
cannot be reached is said once in the progress and left out (a replica down does not block a
deploy; its lag is then unknown).
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from llm_proxy_db.config.parsing import MYSQL_REPLICA_URLS_ENV, env_settings
from llm_proxy_db.dialects.mysql import topology as mysql_topology
from llm_proxy_db.dialects.mysql.engine import engine_for

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

T = TypeVar("T")
Report = Callable[[str, str], None]  # (kind, detail)

REPLICA_URLS_ENV = MYSQL_REPLICA_URLS_ENV
CONFLICT = 1213  # ER_LOCK_DEADLOCK: a deadlock victim, or a Galera certification conflict
MAX_CONFLICT_RETRIES = 10
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.05, 2.0
GALERA_QUEUE_LIMIT = 8  # write sets waiting on a node before we let it catch up
CHECK_EVERY_S = 0.25  # between two readings while paused
REPORT_EVERY_S = 5.0  # between two "paused" lines for the same wait


def error_code(exc: BaseException) -> object:
    """The server's error number of ``exc`` (a driver error, or SQLAlchemy's wrapping of one)."""
    orig = getattr(exc, "orig", exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()) or ())
    return args[0] if args else None


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is 1213 (deadlock victim / certification conflict)."""
    return error_code(exc) == CONFLICT


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt`` (1-based) again: growing, jittered, bounded."""
    base = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)


def max_replica_lag(env: dict[str, str] | None = None) -> float:
    """``LLM_PROXY_MAX_REPLICA_LAG`` in seconds (default 1; 0 switches the waits off)."""
    return env_settings(os.environ if env is None else env).max_replica_lag


@dataclass
class _Replica:
    address: str
    session: Connection


@dataclass
class Pacer:
    """One batched phase's pace on the server of ``connection`` (see the module docstring)."""

    connection: Connection
    report: Report
    max_lag: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    _replicas: list[_Replica] = field(default_factory=list)
    _nodes: list[_Replica] = field(default_factory=list)
    _samples: deque[tuple[float, dict[tuple[int, int], int]]] = field(default_factory=deque)
    _paused_ns: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    paused_s: float = 0.0

    @classmethod
    def open(cls, connection: Connection, report: Report, max_lag: float | None = None) -> Pacer:
        """A pacer with the replicas and Galera nodes of ``connection``'s server connected."""
        pacer = cls(connection, report, max_replica_lag() if max_lag is None else max_lag)
        if pacer.max_lag > 0:
            pacer._connect_others()
        return pacer

    def close(self) -> None:
        """Close the sessions opened to replicas and nodes."""
        for other in (*self._replicas, *self._nodes):
            with suppress(Exception):  # closing a dead session: nothing to do
                other.session.close()
        self._replicas.clear()
        self._nodes.clear()

    def __enter__(self) -> Pacer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node_sessions(self) -> list[Connection]:
        """Sessions on the Galera nodes reached (ours may be among them); none on one server."""
        return [node.session for node in self._nodes]

    # -- conflicts ----------------------------------------------------------------------------

    def run_batch(self, batch: Callable[[], T]) -> T:
        """``batch()`` (which commits its own transaction); on 1213 rolled back and run again."""
        attempt = 0
        while True:
            try:
                return batch()
            except Exception as exc:
                if not is_conflict(exc) or attempt >= MAX_CONFLICT_RETRIES:
                    raise
                attempt += 1
                self.conflicts += 1
                self.connection.exec_driver_sql("ROLLBACK")
                self.report("throttle", f"retrying batch after certification conflict ({attempt})")
                self.sleep(backoff(attempt))

    # -- lag ----------------------------------------------------------------------------------

    def wait(self) -> float:
        """Wait while a replica lags or Galera's flow control holds; returns the seconds waited."""
        if self.max_lag <= 0 or not (self._replicas or self._nodes):
            return 0.0
        reason = self.behind()
        if reason is None:
            return 0.0
        started = time.monotonic()
        last_report = 0.0
        while reason is not None:
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S:
                self.report("throttle", f"paused: {reason}")
                last_report = now
            self.sleep(CHECK_EVERY_S)
            reason = self.behind()
        waited = time.monotonic() - started
        self.paused_s += waited
        self.report("throttle", f"resumed after {waited:.1f} s")
        return waited

    def behind(self) -> str | None:
        """Why the next batch should wait ("replica lag 2 s (host:port)"), or None."""
        now = time.monotonic()
        if self._replicas:
            self._sample(now)
        for replica in self._replicas:
            lag = self._replica_lag(replica, now)
            if lag is None:
                return f"replica lag unknown, SQL thread stopped ({replica.address})"
            if lag > self.max_lag:
                return f"replica lag {lag:.1f} s ({replica.address})"
        return self._galera_reason()

    def _sample(self, now: float) -> None:
        position = mysql_topology.parse_gtid_position(_variable(self.connection, "gtid_binlog_pos"))
        if position and (not self._samples or self._samples[-1][1] != position):
            self._samples.append((now, position))
        while len(self._samples) > 4096:
            self._samples.popleft()

    def _replica_lag(self, replica: _Replica, now: float) -> float | None:
        channels = mysql_topology.replica_channels(replica.session)
        applied = mysql_topology.parse_gtid_position(_variable(replica.session, "gtid_slave_pos"))
        reported = [channel.seconds_behind for channel in channels]
        if not reported or any(seconds is None for seconds in reported):
            return None
        clock = next((now - seen for seen, position in self._samples if not mysql_topology.reached(applied, position)),
                     0.0)
        return max(float(max(s for s in reported if s is not None)), clock)

    def _galera_reason(self) -> str | None:
        reasons = []
        for node in self._nodes:
            values: dict[str, Any] = dict(node.session.exec_driver_sql(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_recv_queue', 'wsrep_flow_control_paused_ns')"
            ).fetchall())
            node.session.exec_driver_sql("COMMIT")
            queue = int(values.get("wsrep_local_recv_queue") or 0)
            paused = int(values.get("wsrep_flow_control_paused_ns") or 0)
            rising = paused > self._paused_ns.get(node.address, paused)
            self._paused_ns[node.address] = paused
            if queue > GALERA_QUEUE_LIMIT:
                reasons.append(f"Galera receive queue {queue} on {node.address}")
            elif rising:
                reasons.append(f"Galera flow control paused the cluster ({node.address})")
        return "; ".join(reasons) or None

    # -- finding the others ---------------------------------------------------------------------

    def _connect_others(self) -> None:
        url = self.connection.engine.url
        galera = mysql_topology.galera_state(self.connection)
        if galera is not None and galera.size > 1:
            for address in mysql_topology.galera_nodes(galera, env_settings().galera_nodes):
                self._attach(self._nodes, address, _node_url(url, address))
        named = env_settings().mysql_replica_urls
        listed = mysql_topology.listed_replicas(self.connection)
        self.connection.exec_driver_sql("COMMIT")
        for entry in dict.fromkeys([*listed, *named]):
            target = _replica_url(url, entry)
            self._attach(self._replicas, f"{target.host}:{target.port or 3306}", target)

    def _attach(self, into: list[_Replica], address: str, url: URL) -> None:
        import sqlalchemy as sa

        if any(other.address == address for other in into):
            return  # listed by the primary and named as well
        try:
            session = engine_for(url).connect()
        except sa.exc.DBAPIError as exc:
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()
            self.report("throttle", f"cannot reach {address} to watch its lag, left out: "
                        f"{detail[0] if detail else type(exc).__name__}")
            return
        into.append(_Replica(address, session))


def _variable(session: Connection, name: str) -> str:
    """``@@name`` as text; empty where the server has no such variable (MySQL 8 has no MariaDB
    GTID positions: the lag is then ``Seconds_Behind_Source`` alone)."""
    import sqlalchemy as sa

    try:
        value = session.exec_driver_sql(f"SELECT @@{name}").scalar()
    except sa.exc.DBAPIError:
        value = None
    session.exec_driver_sql("COMMIT")
    return str(value or "")


def _node_url(url: URL, address: str) -> URL:
    host, _, port = address.rpartition(":")
    return url.set(host=host.strip("[]") or address, port=int(port) if port.isdigit() else 3306)


def _replica_url(url: URL, entry: str) -> URL:
    """``host:port`` (our credentials and database) or a ``mysql://`` / ``mariadb://`` URL."""
    from sqlalchemy.engine import make_url

    if "://" in entry:
        named = make_url(entry)
        return named.set(drivername="mysql+pymysql", query={**url.query, **named.query})
    return _node_url(url, entry)


def describe(pacer: Pacer | None) -> dict[str, Any]:
    """What a phase's pacer did, for the bench and tests."""
    if pacer is None:
        return {"conflicts": 0, "paused_s": 0.0}
    return {"conflicts": pacer.conflicts, "paused_s": round(pacer.paused_s, 3)}
