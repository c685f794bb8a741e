"""Before the shape of an unversioned database is read: let a running goose run finish.

The service migrates MySQL and PostgreSQL with goose at every start, under its own lock
(``GET_LOCK('llm-proxy-migrations')``, ``pg_try_advisory_lock(3141592653)``).  On MySQL each
of a goose file's statements commits on its own, so a database looked at while a service
starts can be half-way through a goose version: a shape no known state has, which is not a
reason to refuse, let alone to force anything.  So whoever reads the shape outside our own
migration lock (which includes the service's) first waits, at most the lock timeout
(``--lock-timeout``, else ``LLM_PROXY_LOCK_TIMEOUT``), until no other session holds the service's lock.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from llm_proxy_db.config.waits import wait_bound
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import LockTimeoutError

POLL_S = 0.1


def wait_for_the_service(connection: Connection, timeout: float | None = None) -> float:
    """Wait while another session holds the service's migration lock; returns the seconds
    waited.  Raises :class:`LockTimeoutError` (exit 7) when it is still held after ``timeout``
    (default: the command's ``--lock-timeout``, else ``LLM_PROXY_LOCK_TIMEOUT``: it waited 300 s
    whatever ``--lock-timeout`` said)."""
    dialect = dialect_for(connection)
    limit = wait_bound() if timeout is None else timeout
    started = time.monotonic()
    while dialect.service_migrating(connection):
        waited = time.monotonic() - started
        if waited >= limit:
            raise LockTimeoutError(
                f"the llm-proxy service's migration lock is still held after {waited:.0f}s: a service "
                "is starting and running its goose migrations (on MySQL: on some database of this server); "
                "the schema was not read, nothing was changed",
                hint="run again once the service has started (--lock-timeout, LLM_PROXY_LOCK_TIMEOUT, sets the wait)",
            )
        time.sleep(POLL_S)
    return time.monotonic() - started
