"""Fixtures for the MySQL-family topologies `.ci/topology/mariadb.sh` starts on loopback.

- ``LLM_PROXY_TEST_GALERA_URLS``: three ``mysql://`` URLs, one per Galera node (comma-separated);
- ``LLM_PROXY_TEST_MYSQL_PRIMARY_URL`` / ``LLM_PROXY_TEST_MYSQL_REPLICA_URL``: a MariaDB primary
  and its asynchronous GTID replica.

Without them the tests are skipped with a reason that says how to start the servers
(``.ci/run`` always starts them).  Each test gets its own database, created through the
first node (Galera replicates it) or the primary (the replica replays it) and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import mysql as mysql_dialect

GALERA_URLS_ENV = "LLM_PROXY_TEST_GALERA_URLS"
PRIMARY_URL_ENV = "LLM_PROXY_TEST_MYSQL_PRIMARY_URL"
REPLICA_URL_ENV = "LLM_PROXY_TEST_MYSQL_REPLICA_URL"
START_HINT = 'start them with `.ci/topology/mariadb.sh start && eval "$(.ci/topology/mariadb.sh env)"`'


def _require(env: str) -> str:
    value = os.environ.get(env, "").strip()
    if not value:
        pytest.skip(f"MySQL topology NOT TESTED: {env} is not set; {START_HINT}")
    return value


def execute(url: URL, *statements: str) -> list[tuple[object, ...]]:
    """Run ``statements`` on a connection of their own; the last one's rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = connection.exec_driver_sql(statement)
                rows = [tuple(row) for row in result] if result.returns_rows else []
            connection.commit()
            return rows
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Topology:
    """One test database as seen through each server of a topology (``urls[0]`` writes)."""

    urls: tuple[URL, ...]

    def settings(self, index: int = 0) -> Settings:
        """Settings reaching the database through server ``index``."""
        return Settings(driver="mysql", database_url=self.urls[index])


def _databases(servers: list[URL], wait: Callable[[URL, str], None]) -> Iterator[Callable[[], Topology]]:
    created: list[str] = []

    def create() -> Topology:
        name = f"llmproxy_topo_{uuid.uuid4().hex[:12]}"
        execute(servers[0], mysql_dialect.SCRATCH.create_sql.format(name=name))
        created.append(name)
        for server in servers[1:]:
            wait(server, name)
        return Topology(tuple(server.set(database=name) for server in servers))

    try:
        yield create
    finally:
        for name in created:
            execute(servers[0], mysql_dialect.SCRATCH.drop_sql.format(name=name))


def wait_for_database(server: URL, name: str, timeout: float = 30.0) -> None:
    """Wait until ``name`` exists on ``server`` (an asynchronous replica replays it later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if execute(server, f"SHOW DATABASES LIKE '{name}'"):
            return
        time.sleep(0.1)
    raise AssertionError(f"database {name} never reached {server.render_as_string(hide_password=True)}")


def cli(settings_url: sa.engine.URL, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``llm-proxy-db`` in a child process against ``settings_url``."""
    url = settings_url.render_as_string(hide_password=False).replace("mysql+pymysql://", "mysql://")
    return subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "--database-url", url, *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def goose1_with_tokens(topology: Topology, tokens: int) -> None:
    """The service's MySQL goose-1 shape (bench/mariadb_data) with ``tokens`` tokens, via node 1."""
    sys.path.insert(0, "bench")
    import mariadb_data  # type: ignore[import-not-found]

    server = mariadb_data.Server.from_url(topology.urls[0].render_as_string(hide_password=False))
    rows = mariadb_data.ROWS.format(projects=10, tokens=tokens, events=10)
    server.run(mariadb_data.BARE_TABLES + rows + mariadb_data.INDEXES, topology.urls[0].database)


@pytest.fixture(scope="session")
def galera_servers() -> list[URL]:
    """The three Galera nodes' URLs (skipped without ``LLM_PROXY_TEST_GALERA_URLS``)."""
    urls = [mysql_dialect.parse_database_url(part) for part in _require(GALERA_URLS_ENV).split(",") if part.strip()]
    if len(urls) < 2:
        pytest.skip(f"MySQL topology NOT TESTED: {GALERA_URLS_ENV} names fewer than two nodes")
    return urls


@pytest.fixture
def galera_factory(galera_servers: list[URL]) -> Iterator[Callable[[], Topology]]:
    """Creates databases through node 1, seen through every node; dropped after the test."""
    yield from _databases(galera_servers, wait_for_database)


@pytest.fixture
def galera(galera_factory: Callable[[], Topology]) -> Topology:
    """A brand-new, empty database on the Galera cluster (``urls[i]``: through node i+1)."""
    return galera_factory()


@pytest.fixture(scope="session")
def replication_servers() -> list[URL]:
    """The primary's and the replica's URLs (skipped without the two variables)."""
    return [mysql_dialect.parse_database_url(_require(env)) for env in (PRIMARY_URL_ENV, REPLICA_URL_ENV)]


@pytest.fixture
def replicated(replication_servers: list[URL]) -> Iterator[Topology]:
    """A brand-new, empty database on the primary (``urls[0]``), replayed on the replica (``urls[1]``)."""
    factory = _databases(replication_servers, wait_for_database)
    create = next(factory)
    try:
        yield create()
    finally:
        factory.close()
