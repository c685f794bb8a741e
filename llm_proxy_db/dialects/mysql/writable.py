"""Whether a schema change may start through a MySQL server, and what the server is part of
(for ``migrate status``): the facts of :mod:`.topology` turned into a refusal or a summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_proxy_db.dialects.drivers import require_driver
from llm_proxy_db.dialects.mysql.base import DRIVER_PACKAGE
from llm_proxy_db.dialects.mysql.connection import connect_args, create_engine
from llm_proxy_db.dialects.mysql.topology import DriverConnection, Topology, topology, unwritable_reason
from llm_proxy_db.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.config.settings import Settings


def refuse_unwritable(settings: Settings, connection: Connection) -> Topology:
    """The server's topology; DatabaseConnectionError (exit 3) when no change may start through
    it: a read-only server or a replica, a Galera node not Synced in the Primary component."""
    facts = topology(connection)
    reason = unwritable_reason(facts)
    if reason is not None:
        galera = facts.galera is not None and not facts.read_only and not facts.channels
        raise DatabaseConnectionError(
            f"{settings.describe()}: {reason}; "
            f"{'point at a Synced node' if galera else 'point at the primary'}. Nothing was locked or changed",
            hint="set DATABASE_URL to a server that takes writes (the primary, or a Synced Galera "
            "node); reads (`migrate status`, `migrate log`, `db backup`) work here",
        )
    return facts


def describe_topology(settings: Settings) -> dict[str, Any] | None:
    """What the server is part of (Galera, replication, read-only) for ``migrate status``;
    None for a lone writable server or when the facts cannot be read."""
    import sqlalchemy as sa

    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            return topology(connection).as_dict()
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()


def describe_topology_at(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`describe_topology` with a bare PyMySQL connection (``kwargs``: its ``connect()``
    arguments), for the fast ``migrate status``: the same statements, no SQLAlchemy."""
    require_driver(*DRIVER_PACKAGE)
    import pymysql

    try:
        connection = pymysql.connect(**kwargs)
    except pymysql.err.Error:
        return None
    try:
        return topology(DriverConnection(connection, (pymysql.err.Error,))).as_dict()
    except pymysql.err.Error:
        return None
    finally:
        connection.close()


def surely_writable(settings: Settings) -> bool:
    """:func:`surely_writable_at` for ``settings``."""
    return surely_writable_at(connect_args(settings.sqlalchemy_url()))


def surely_writable_at(kwargs: dict[str, Any]) -> bool:
    """True when bare reads show what :func:`refuse_unwritable` would accept (the rehearsal's
    check before its copy): no read-only switch, no replicating channel, not a Galera node out
    of sync or out of the Primary component, read by the same statements (:func:`.topology.topology`)
    with a bare PyMySQL connection; False when it would refuse (the full path then explains);
    a failure raises."""
    require_driver(*DRIVER_PACKAGE)
    import pymysql

    connection = pymysql.connect(**kwargs)
    try:
        return unwritable_reason(topology(DriverConnection(connection, (pymysql.err.Error,)))) is None
    finally:
        connection.close()
