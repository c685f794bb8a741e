"""MySQL/MariaDB: every session waits for a lock at most the command's bound (:mod:`llm_proxy_db.config.waits`).

``lock_wait_timeout`` bounds metadata-lock waits (a ``LOCK TABLES``, a DDL statement, a long
transaction holding a table), ``innodb_lock_wait_timeout`` row-lock waits; both are session
settings, set once when the connection opens (whole seconds, at least 1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llm_proxy_db.config.waits import wait_bound

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

LOCK_WAIT_TIMEOUT_MAX = 31_536_000  # the servers' maximum for lock_wait_timeout (one year)


def session_bound_sql() -> str:
    """The ``SET SESSION`` statement bounding a session's lock waits (an ``init_command`` too)."""
    seconds = min(LOCK_WAIT_TIMEOUT_MAX, max(1, math.ceil(wait_bound())))
    return f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}"


def bound_lock_waits(engine: Engine) -> None:
    """Give every session opened by ``engine`` the command's lock wait bound."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(session_bound_sql())
        cursor.close()
