"""PostgreSQL: every transaction waits for a lock at most the command's bound (:mod:`llm_proxy_db.config.waits`).

``SET LOCAL`` (``set_config(..., true)``) at each ``BEGIN``: it ends with the transaction, so it
survives transaction pooling (PgBouncer) and never leaks into a reused session.  Revisions set
their own, shorter ``lock_timeout`` in their transactions afterwards (the migration
environment's listener runs after the engine's); the client tools get it through ``PGOPTIONS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_proxy_db.config.waits import OWN_LOCK_TIMEOUT, wait_bound_ms

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def bound_lock_waits(engine: Engine) -> None:
    """Give every transaction begun on ``engine`` the command's ``lock_timeout``."""
    from sqlalchemy import event

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # no transaction to scope it to: pg_online sets its own per statement
        if connection.info.get(OWN_LOCK_TIMEOUT):
            return  # a migration sets its own, shorter one in each of its transactions
        connection.exec_driver_sql(f"SELECT set_config('lock_timeout', '{wait_bound_ms()}ms', true)")


def client_options(existing: str = "") -> str:
    """``PGOPTIONS`` for a client tool (``pg_dump``, ``psql``): the same bound on its lock waits."""
    return f"{existing} -c lock_timeout={wait_bound_ms()}".strip()
