"""Real databases for every test: a SQLite file in a tmp dir, or a fresh PostgreSQL or MySQL database.

PostgreSQL is found in this order:
1. ``LLM_PROXY_TEST_POSTGRES_URL`` (any database on the server; ``.ci/run`` points it at the
   local server), e.g. ``postgresql://postgres@127.0.0.1:5432/test``;
2. a throw-away container through testcontainers when a Docker engine answers;
3. otherwise every PostgreSQL test is skipped, and the run says so loudly.
Each PostgreSQL test gets its own database, created before and dropped after it.

MySQL/MariaDB is found the same way:
1. ``LLM_PROXY_TEST_MYSQL_URL`` (a ``mysql://`` URL or the service's DSN form; ``.ci/run`` points
   it at the local MariaDB), e.g. ``mysql://root@127.0.0.1:3306/test``;
2. a ``mysql:8.0`` container through testcontainers when Docker answers (MariaDB 11 runs as
   a service container in the GitHub workflow through the variable);
3. otherwise every MySQL test is skipped, and the run says so loudly.
Each MySQL test gets its own database (``llmproxy_test_<random>``), dropped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import mysql as mysql_dialect
from llm_proxy_db.dialects import postgresql
from llm_proxy_db.dialects.scratch import ScratchRecipe
from tests import topology
from tests.topology import pooled_database, replicated_database  # noqa: F401 (fixtures)

POSTGRES_URL_ENV = "LLM_PROXY_TEST_POSTGRES_URL"
MYSQL_URL_ENV = "LLM_PROXY_TEST_MYSQL_URL"
DIALECTS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]

_skip_reasons: dict[str, str] = {}


def _docker_error() -> str | None:
    """Why no Docker engine answers, or None when one does."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker engine here"
        return type(exc).__name__
    return None


def _server_url(
    label: str, env: str, parse: Callable[[str], URL], container: Callable[[], Any]
) -> Iterator[URL | None]:
    """The server named by ``env``; else a testcontainers container; else None with a loud reason."""
    explicit = os.environ.get(env)
    if explicit:
        yield parse(explicit)
        return
    error = _docker_error()
    if error is not None:
        _skip_reasons[label] = (
            f"{label} tests SKIPPED: {env} is not set and no Docker engine is reachable for testcontainers ({error})"
        )
        yield None
        return
    with container() as running:
        yield parse(running.get_connection_url().replace("+psycopg", "").replace("+pymysql", ""))


def _database_factory(label: str, server_url: URL | None, recipe: ScratchRecipe) -> Iterator[Callable[[], URL]]:
    """Creates brand-new, empty databases with the dialect's own recipe; all dropped after the test."""
    if server_url is None:
        pytest.skip(_skip_reasons.get(label, f"no {label} server"))
    options = {"isolation_level": recipe.isolation_level} if recipe.isolation_level else {}
    admin = sa.create_engine(server_url, poolclass=sa.pool.NullPool, **options)
    created: list[str] = []

    def create() -> URL:
        name = f"llmproxy_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(recipe.create_sql.format(name=name))
            conn.commit()
        created.append(name)
        return server_url.set(database=name)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(recipe.drop_sql.format(name=name))
            conn.commit()
        admin.dispose()


def _postgres_container() -> Any:
    from testcontainers.postgres import PostgresContainer

    return PostgresContainer("postgres:17", driver="psycopg")


def _mysql_container() -> Any:
    from testcontainers.mysql import MySqlContainer

    return MySqlContainer("mysql:8.0", username="root", password="test", dbname="test")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[URL | None]:
    """A URL on a PostgreSQL server we may create databases on, or None."""
    yield from _server_url("PostgreSQL", POSTGRES_URL_ENV, postgresql.parse_database_url, _postgres_container)


@pytest.fixture
def postgres_database_factory(postgres_server_url: URL | None) -> Iterator[Callable[[], URL]]:
    """Creates brand-new, empty PostgreSQL databases; all are dropped after the test."""
    yield from _database_factory("PostgreSQL", postgres_server_url, postgresql.SCRATCH)


@pytest.fixture
def postgres_url(postgres_database_factory: Callable[[], URL]) -> URL:
    """A URL to a brand-new, empty PostgreSQL database, dropped after the test."""
    return postgres_database_factory()


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[URL | None]:
    """A URL on a MySQL/MariaDB server we may create databases on, or None."""
    yield from _server_url("MySQL", MYSQL_URL_ENV, mysql_dialect.parse_database_url, _mysql_container)


@pytest.fixture
def mysql_database_factory(mysql_server_url: URL | None) -> Iterator[Callable[[], URL]]:
    """Creates brand-new, empty MySQL databases; all are dropped after the test."""
    yield from _database_factory("MySQL", mysql_server_url, mysql_dialect.SCRATCH)


@pytest.fixture
def mysql_url(mysql_database_factory: Callable[[], URL]) -> URL:
    """A URL to a brand-new, empty MySQL database, dropped after the test."""
    return mysql_database_factory()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """``sqlite``, ``postgresql`` or ``mysql``: tests that take it run once per dialect."""
    return str(request.param)


def _server_settings(dialect: str, request: pytest.FixtureRequest) -> Settings:
    if dialect == "mysql":
        return Settings(driver="mysql", database_url=request.getfixturevalue("mysql_database_factory")())
    return Settings(driver="postgres", database_url=request.getfixturevalue("postgres_database_factory")())


@pytest.fixture
def settings(dialect: str, tmp_path, request: pytest.FixtureRequest) -> Settings:
    """Settings for an empty database of the current dialect."""
    if dialect == "sqlite":
        return Settings(driver="sqlite", database_path=tmp_path / "data" / "llm-proxy.db")
    return _server_settings(dialect, request)


@pytest.fixture
def make_settings(dialect: str, tmp_path, request: pytest.FixtureRequest) -> Callable[[], Settings]:
    """Settings for further empty databases of the current dialect (for comparisons)."""

    def make() -> Settings:
        if dialect == "sqlite":
            return Settings(driver="sqlite", database_path=tmp_path / f"other-{uuid.uuid4().hex[:8]}.db")
        return _server_settings(dialect, request)

    return make


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    """Settings for an empty SQLite file."""
    return Settings(driver="sqlite", database_path=tmp_path / "data" / "llm-proxy.db")


REPO_ROOT = Path(__file__).resolve().parent.parent
# Written into the root by the run itself (pytest-cov's data files), by tools that may run
# beside it (linters' caches) or by `make` (.tools: the npm tools tests/test_workflow.py
# installs on demand), not by a test.
_RUN_OWN_FILES = (
    ".coverage", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".grimp_cache", ".import_linter_cache",
    ".hypothesis", ".tools", "__pycache__",
)
_root_before: set[str] = set()
_left_in_root: list[str] = []


def _root_entries() -> set[str]:
    return {path.name for path in REPO_ROOT.iterdir() if not path.name.startswith(_RUN_OWN_FILES)}


@pytest.fixture(scope="session", autouse=True)
def _backups_in_a_temporary_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A server's automatic dumps default to ``$XDG_STATE_HOME/llm-proxy-db/backups``: in the
    suite, a temporary directory (never the user's home, never the repository)."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    yield
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember what the repository root holds before any test runs."""
    _root_before.update(_root_entries())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it left new files in the repository root (tests write into tmp dirs)."""
    _left_in_root[:] = sorted(_root_entries() - _root_before)
    if _left_in_root and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Say loudly, at the end of the run, that PostgreSQL, MySQL or the PostgreSQL topology
    (poolers, replica: :mod:`tests.topology`) was not tested, and which files the run left in
    the repository root (which fails it)."""
    for label, reason in {**_skip_reasons, **topology.skip_reasons}.items():
        terminalreporter.section(f"{label} NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.line(reason, red=True)
    if _left_in_root:
        terminalreporter.section("FILES LEFT IN THE REPOSITORY ROOT", sep="!", red=True, bold=True)
        terminalreporter.line(
            f"the run created {', '.join(_left_in_root)} in {REPO_ROOT}: tests must write into "
            "tmp_path (this fails the run)", red=True,
        )
