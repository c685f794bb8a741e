"""Is this PostgreSQL URL a session of our own, or a transaction pooler's borrowed connection?

Behind a transaction pooler (PgBouncer ``pool_mode = transaction``, RDS Proxy once pinned
sessions are released, Supavisor, pgcat) each transaction may run on another server session,
so a session-level advisory lock, a prepared statement or a ``SET`` lands on a connection the
service uses next.  Nothing on the client port says "pooler" (PgBouncer's ``SHOW POOLS`` is
only on its admin console), so the probe watches what a pooler cannot hide:

1. **The same client, two transactions.**  On a session of our own, ``pg_backend_pid()``
   never changes between two transactions; a pooler that hands out another server session
   for the second one gives itself away.
2. **Two clients at once.**  Two connections of ours never share a backend; under a
   transaction pooler, client B's transaction often runs on the server session that client A
   released a moment before (PgBouncer reuses the most recently released one first).
3. **A pinned transaction.**  While client A holds a transaction open, B runs on another
   server session; when A commits, that session is the most recently released one, and B's
   next transaction usually lands on it.

An idle pool is caught by 2 and 3 (LIFO reuse), a busy pool by 1 and 2 (other clients take
the session back); the probe runs several rounds and stops at the first proof.  No session
state is created (no ``SET``, no lock, no prepared statement: ``prepare_threshold=None``), so
the probe itself leaves nothing on the pooler's connections.  Supplementary, and never a
proof on its own: whether the backend reports another port than the URL's (a proxy or a
port mapping forwards the connection), which the message mentions.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.connecting import connection_error
from llm_proxy_db.dialects.drivers import require_driver
from llm_proxy_db.dialects.postgresql.base import _STANDBY, DRIVER_PACKAGE
from llm_proxy_db.dialects.postgresql.connection import libpq_url

ROUNDS = 4
_PID = "SELECT pg_backend_pid()"


@dataclass(frozen=True)
class PoolerProbe:
    """What the probe saw: ``transaction_pooled`` with the evidence, and whether the server
    reports another port than the URL's (``forwarded``: a pooler or a port mapping)."""

    transaction_pooled: bool
    evidence: str
    forwarded: bool


def transaction_pooler(settings: Settings) -> str | None:
    """Why ``settings``' URL is a transaction pooler's (sessions not ours), or None; a server
    that cannot be reached is the usual "cannot open database" (exit 3)."""
    require_driver(*DRIVER_PACKAGE)  # exit 2 naming the extra, before psycopg is imported
    import psycopg

    try:
        found = probe(libpq_url(settings), settings.sqlalchemy_url().port or 5432)
    except psycopg.Error as exc:
        raise connection_error(settings, exc) from None
    return found.evidence if found.transaction_pooled else None


def probe(conninfo: str, url_port: int | None, rounds: int = ROUNDS) -> PoolerProbe:
    """Probe the server behind ``conninfo`` with two client connections (see the module)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as first, psycopg.connect(
        conninfo, autocommit=True, prepare_threshold=None
    ) as second:
        forwarded = _forwarded(first, url_port)
        for _ in range(rounds):
            evidence = _one_round(first, second)
            if evidence is not None:
                return PoolerProbe(True, evidence, forwarded)
    return PoolerProbe(False, "every transaction of a client ran on its own server session", forwarded)


def _one_round(first: object, second: object) -> str | None:
    """One round of checks 1-3; the evidence of transaction pooling, or None."""
    a1, b1 = _pid(first), _pid(second)
    if a1 == b1:
        return f"two clients' transactions ran on the same server session (pid {a1})"
    a2 = _pid(first)
    if a2 != a1:
        return f"one client's consecutive transactions ran on server sessions {a1} and {a2}"
    with first.transaction():  # type: ignore[attr-defined]
        pinned = _pid(first)
        b2 = _pid(second)
    b3 = _pid(second)
    if pinned != a1:
        return f"one client's transactions ran on server sessions {a1} and {pinned}"
    if len({b1, b2, b3}) > 1:
        return f"one client's consecutive transactions ran on server sessions {b1}, {b2} and {b3}"
    return None


def _pid(connection: object) -> int:
    return int(connection.execute(_PID).fetchone()[0])  # type: ignore[attr-defined]


def _forwarded(connection: object, url_port: int | None) -> bool:
    """True when the server says it listens on another port than the URL's (TCP only)."""
    port = connection.execute("SELECT inet_server_port()").fetchone()[0]  # type: ignore[attr-defined]
    return port is not None and url_port is not None and int(port) != int(url_port)


def surely_writable(settings: Settings) -> bool:
    """:func:`surely_writable_at` for ``settings``' URL."""
    return surely_writable_at(libpq_url(settings), settings.sqlalchemy_url().port or 5432)


def surely_writable_at(conninfo: str, port: int) -> bool:
    """True when bare reads show what ``safety.topology.writable_settings`` would accept: no
    transaction pooler (the same :func:`probe`) and a primary whose session writes; False when
    it would refuse them (the full path then explains; a failure raises)."""
    require_driver(*DRIVER_PACKAGE)
    import psycopg

    if probe(conninfo, port).transaction_pooled:
        return False
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as connection:
        return connection.execute(_STANDBY).fetchone() is None
