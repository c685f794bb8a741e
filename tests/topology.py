"""PostgreSQL beyond one server, for the tests: PgBouncer pools, a primary with a streaming replica.

``.ci/topology/postgres.sh start`` starts them and ``... env`` prints the variables read here:

``LLM_PROXY_TEST_PGBOUNCER_TX_URL`` / ``LLM_PROXY_TEST_PGBOUNCER_SESSION_URL``
    PgBouncer in transaction / session mode in front of the server of
    ``LLM_PROXY_TEST_POSTGRES_URL`` (a wildcard database entry: any database name works).
``LLM_PROXY_TEST_PG_PRIMARY_URL`` / ``LLM_PROXY_TEST_PG_REPLICA_URL``
    a primary of its own and its streaming replica (``pg_basebackup -R``).

Without them the tests that need them are skipped, and the run ends with a loud
``PostgreSQL TOPOLOGY NOT TESTED`` section.  Each test gets its own database: on the shared
server (reached directly and through both pools), or on the primary (and, replicated, on
the replica), dropped afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy.engine import URL

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import postgresql

TX_ENV = "LLM_PROXY_TEST_PGBOUNCER_TX_URL"
SESSION_ENV = "LLM_PROXY_TEST_PGBOUNCER_SESSION_URL"
PRIMARY_ENV = "LLM_PROXY_TEST_PG_PRIMARY_URL"
REPLICA_ENV = "LLM_PROXY_TEST_PG_REPLICA_URL"
LABEL = "PostgreSQL TOPOLOGY"
START = "start them with `.ci/topology/postgres.sh start` and `eval \"$(.ci/topology/postgres.sh env)\"`"

skip_reasons: dict[str, str] = {}


def libpq(url: URL) -> str:
    """A psycopg connection string for ``url``."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _required(*names: str) -> list[URL]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        reason = f"{LABEL} tests SKIPPED: {', '.join(missing)} not set; {START}"
        skip_reasons[LABEL] = reason
        pytest.skip(reason)
    return [postgresql.parse_database_url(os.environ[name]) for name in names]


@dataclass(frozen=True)
class PooledDatabase:
    """One database on the shared server, reached directly and through both PgBouncer pools."""

    direct: URL
    transaction: URL
    session: URL

    def settings(self, url: URL, direct: URL | None = None) -> Settings:
        """Settings for ``url`` (and a direct URL for changes)."""
        return Settings(driver="postgres", database_url=url, direct_url=direct)


@pytest.fixture
def pooled_database(postgres_database_factory: Callable[[], URL]) -> PooledDatabase:
    """A new database, with its URLs through the transaction and the session pool."""
    tx, session = _required(TX_ENV, SESSION_ENV)
    direct = postgres_database_factory()
    return PooledDatabase(direct, tx.set(database=direct.database), session.set(database=direct.database))


@dataclass(frozen=True)
class ReplicatedDatabase:
    """One database on the topology's primary, and the same database on its replica."""

    primary: URL
    replica: URL

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Return once the replica has replayed everything the primary has written so far."""
        with psycopg.connect(libpq(self.primary), autocommit=True) as connection:
            target = connection.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(libpq(self.replica), autocommit=True) as connection:
                    done = connection.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),)
                    ).fetchone()[0]  # type: ignore[index]
                if done:
                    return
            except psycopg.OperationalError:
                pass  # the database is not on the replica yet
            time.sleep(0.05)
        raise AssertionError(f"the replica did not replay up to {target} within {timeout}s")


@pytest.fixture
def replicated_database() -> Iterator[ReplicatedDatabase]:
    """A new database on the primary, replayed on the replica before the test; dropped after."""
    primary, replica = _required(PRIMARY_ENV, REPLICA_ENV)
    name = f"llmproxy_topo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(primary), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database = ReplicatedDatabase(primary.set(database=name), replica.set(database=name))
    try:
        database.wait_replayed()
        yield database
    finally:
        with psycopg.connect(libpq(primary), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
