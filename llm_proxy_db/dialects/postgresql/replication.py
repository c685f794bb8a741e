"""PostgreSQL replication facts: is this server a read-only standby, how far behind are the
streaming replicas of a primary.

Primitives only (one query each); what to do about them is decided above (the standby
refusal in :mod:`llm_proxy_db.safety.topology`, the backfill throttle in
:mod:`llm_proxy_db.migration.replica_throttle`).  The throttle, above the dialects, imports
this module by name: it exists for PostgreSQL's batched phases only.

**Replica lag, read on the primary.**  ``pg_stat_replication.replay_lag`` alone does not
do: it is NULL once a replica has caught up and WAL is idle, and it only measures WAL
positions the replica *has* replayed, so a replica whose replay stalls (a long query holding
it back under ``max_standby_streaming_delay``, ``pg_wal_replay_pause()``) keeps showing its
last, small value while it falls further behind.  The LSN distance (``pg_current_wal_lsn()``
minus ``replay_lsn``) always moves, but is bytes, not seconds.  :class:`LagClock` therefore
turns the LSN distance into time on our side: it remembers when the primary's WAL position
was seen (one sample per reading), and a replica's lag is at least the time since the first
sample beyond its ``replay_lsn`` — a lower bound that grows while the replica stands still
and drops to 0 once it has replayed everything.  The reported lag is the larger of that and
``replay_lag``.  Only walsenders in state ``streaming`` or ``catchup`` count (a running
``pg_basebackup`` is not a replica).  A role without ``pg_monitor`` (or superuser) sees
NULL state and positions for other roles' walsenders: :attr:`LagReading.unreadable` counts
them.

Why not ``replay_lag`` alone, nor bytes alone: the first is NULL when idle and frozen while
replay is stuck; the second cannot be compared with a limit in seconds (a 16 MB distance is
nothing on a fast link and minutes on a slow replica).  The lower bound costs one row per
distinct WAL position seen, kept in memory for the phase.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.connecting import connection_error
from llm_proxy_db.dialects.postgresql.connection import create_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction

_STANDBY_FACTS = (
    "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'), "
    "host(inet_server_addr()), inet_server_port()"
)
_REPLICAS = (
    "SELECT coalesce(application_name, ''), host(client_addr), "
    "pg_current_wal_lsn() - replay_lsn, extract(epoch FROM replay_lag), "
    "pg_current_wal_lsn() - '0/0'::pg_lsn, replay_lsn - '0/0'::pg_lsn "
    "FROM pg_stat_replication WHERE state IS NULL OR state IN ('streaming', 'catchup')"
)
_WAL_POSITION = "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() - '0/0'::pg_lsn END"


def read_only_reason(settings: Settings) -> str | None:
    """Why nothing can be written at ``settings``' URL (a standby, a read-only session), or None."""
    import sqlalchemy as sa

    url = settings.sqlalchemy_url()
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            return read_only_reason_on(connection, f"{url.host or 'localhost'}:{url.port or 5432}")
    except sa.exc.DBAPIError as exc:
        raise connection_error(settings, exc) from None
    finally:
        engine.dispose()


def read_only_reason_on(connection: Connection, where: str) -> str | None:
    """Why nothing can be written through ``connection``, or None when it can.

    ``where`` describes the URL (host:port) for the message; the server's own address is added
    when it differs (a proxy in between).
    """
    in_recovery, read_only, host, port = connection.exec_driver_sql(_STANDBY_FACTS).one()
    connection.rollback()
    server = f"{host}:{port}" if host else None
    at = where if server is None or server == where else f"{where}, server {server}"
    if in_recovery:
        return f"this is a read-only standby ({at}): it is in recovery, replaying a primary's WAL"
    if str(read_only).lower() == "on":
        return (
            f"this database session is read-only ({at}): default_transaction_read_only is on "
            "for the role or the database (or the server is a standby behind a proxy)"
        )
    return None


def wal_position(connection: Connection) -> int | None:
    """The primary's current WAL position in bytes; None on a standby."""
    value = connection.exec_driver_sql(_WAL_POSITION).scalar()
    return None if value is None else int(value)


@dataclass(frozen=True)
class ReplicaLag:
    """One replica as the primary sees it: its name, the bytes and seconds it is behind."""

    name: str
    behind_bytes: int
    seconds: float


@dataclass(frozen=True)
class LagReading:
    """Every streaming replica's lag at one moment; ``unreadable`` replicas hid their positions."""

    replicas: tuple[ReplicaLag, ...] = ()
    unreadable: int = 0

    @property
    def worst(self) -> ReplicaLag | None:
        """The replica furthest behind in seconds, or None without replicas."""
        return max(self.replicas, key=lambda replica: replica.seconds, default=None)


@dataclass
class LagClock:
    """Reads the replicas' lag on a primary, timing the LSN distance itself (see the module).

    One instance per batched phase: it keeps the WAL positions it has seen (at most
    ``keep`` samples, the oldest dropped) to date a replica's replay position.
    """

    keep: int = 4096
    clock: object = time.monotonic
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def read(self, connection: Connection) -> LagReading:
        """The lag of every streaming replica of the server of ``connection``, now."""
        rows = connection.exec_driver_sql(_REPLICAS).fetchall()
        now = self.clock()  # type: ignore[operator]
        replicas, unreadable = [], 0
        current = next((int(row[4]) for row in rows if row[4] is not None), None)
        if current is not None:
            self._remember(now, current)
        for name, address, behind, replay_lag, _current, replayed in rows:
            if behind is None or replayed is None:
                unreadable += 1
                continue
            seconds = max(float(replay_lag or 0.0), self._behind_since(now, int(replayed)))
            if int(behind) <= 0:
                seconds = 0.0
            replicas.append(ReplicaLag(name or str(address or "replica"), max(int(behind), 0), seconds))
        return LagReading(tuple(replicas), unreadable)

    def _remember(self, now: float, position: int) -> None:
        if not self._samples or self._samples[-1][1] != position:
            self._samples.append((now, position))
        while len(self._samples) > self.keep:
            self._samples.popleft()

    def _behind_since(self, now: float, replayed: int) -> float:
        """Seconds since the first remembered WAL position the replica has not replayed."""
        for seen_at, position in self._samples:
            if position > replayed:
                return now - seen_at
        return 0.0
