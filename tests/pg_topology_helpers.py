"""Shared pieces of the pooler, standby and fleet tests: the CLI as a process, pooled traffic,
the service's start-up lock watched, and what a run may leave on the pool's server sessions."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import psycopg
from sqlalchemy.engine import URL

from llm_proxy_db.dialects.postgresql import SERVICE_LOCK_KEY
from tests.topology import libpq

# What this tool ever sets on a session (pg_online, environment, scratch); none may stay.
OUR_SETTINGS = (
    "lock_timeout", "statement_timeout", "synchronous_commit", "client_connection_check_interval",
    "maintenance_work_mem", "max_parallel_maintenance_workers", "search_path",
)
POOL_SIZE = 5  # default_pool_size in .ci/topology/postgres.sh


def cli_env(database_url: URL, direct_url: URL | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI process against ``database_url`` (and a direct URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "LLM_PROXY_DIRECT"))}
    env.update(DB_DRIVER="postgres", DATABASE_URL=libpq(database_url), **extra)
    if direct_url is not None:
        env["LLM_PROXY_DIRECT_URL"] = libpq(direct_url)
    return env


def start_cli(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m llm_proxy_db ARGS`` started (not waited for)."""
    return subprocess.Popen(
        [sys.executable, "-m", "llm_proxy_db", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m llm_proxy_db ARGS``, waited for."""
    return subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", *args], env=env, text=True, capture_output=True,
        timeout=timeout, check=False,
    )


@dataclass
class Watch:
    """What the background clients saw: queries run, errors, the service lock granted while
    the schema was between states."""

    queries: int = 0
    errors: list[str] = field(default_factory=list)
    granted_mid_change: list[str] = field(default_factory=list)
    grants: int = 0


def _traffic(url: URL, stop: threading.Event, watch: Watch) -> None:
    """The service's reads on the pool: short autocommit queries, no prepared statements."""
    try:
        with psycopg.connect(libpq(url), autocommit=True, prepare_threshold=None) as connection:
            while not stop.is_set():
                connection.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'tok%'").fetchone()
                watch.queries += 1
    except psycopg.Error as exc:
        watch.errors.append(str(exc).splitlines()[0])


_STATE = (
    "SELECT (SELECT string_agg(version_num, ',') FROM alembic_version), "
    "to_regclass('projects') IS NOT NULL"
)
_NO_VERSION_YET = "SELECT NULL, to_regclass('projects') IS NOT NULL"


def _service_lock_watcher(url: URL, stop: threading.Event, watch: Watch, head: str) -> None:
    """The service's start-up lock tried as a correct client would through a pool (try and
    unlock in one transaction); when granted, the schema must be empty or at head."""
    try:
        with psycopg.connect(libpq(url), autocommit=True, prepare_threshold=None) as connection:
            while not stop.is_set():
                with connection.transaction():
                    granted = connection.execute(
                        "SELECT pg_try_advisory_xact_lock(%s)", (SERVICE_LOCK_KEY,)
                    ).fetchone()[0]  # type: ignore[index]
                    if granted:
                        watch.grants += 1
                        has_version = connection.execute(
                            "SELECT to_regclass('alembic_version') IS NOT NULL"
                        ).fetchone()[0]  # type: ignore[index]
                        version, tables = connection.execute(_STATE if has_version else _NO_VERSION_YET).fetchone()  # type: ignore[misc]
                        if (version or tables) and version != head:
                            watch.granted_mid_change.append(f"version {version}, tables {tables}")
                time.sleep(0.005)
    except psycopg.Error as exc:
        watch.errors.append(str(exc).splitlines()[0])


@contextmanager
def service_on_pool(url: URL, *, readers: int = 3, head: str = "0007") -> Iterator[Watch]:
    """``readers`` clients of reads and one start-up lock watcher on the pool at ``url``."""
    watch, stop = Watch(), threading.Event()
    threads = [threading.Thread(target=_traffic, args=(url, stop, watch)) for _ in range(readers)]
    threads.append(threading.Thread(target=_service_lock_watcher, args=(url, stop, watch, head)))
    for thread in threads:
        thread.start()
    try:
        yield watch
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def advisory_locks(direct: URL) -> list[tuple[int, int]]:
    """(objid, pid) of every advisory lock held on the database of ``direct``."""
    with psycopg.connect(libpq(direct), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    return [(int(objid), int(pid)) for objid, pid in rows]


def leftovers_on_pool(pool: URL, direct: URL) -> list[str]:
    """What a run of ours left behind: advisory locks on the database, and on every server
    session of the pool (all of them pinned at once: ``POOL_SIZE`` open transactions)
    prepared statements or our session settings."""
    found = [f"advisory lock {objid} held by pid {pid}" for objid, pid in advisory_locks(direct)]
    # (any advisory lock on the test's own database is a leftover: ours, or the service's)
    with ExitStack() as stack:
        sessions = [
            stack.enter_context(psycopg.connect(libpq(pool), autocommit=True, prepare_threshold=None))
            for _ in range(POOL_SIZE)
        ]
        for session in sessions:
            stack.enter_context(session.transaction())
        for session in sessions:
            pid, prepared, settings = session.execute(
                "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_prepared_statements), "
                "(SELECT string_agg(name || '=' || setting, ', ') FROM pg_settings "
                "WHERE source = 'session' AND (name = ANY(%s) OR name LIKE 'llm_proxy%%'))",
                (list(OUR_SETTINGS),),
            ).fetchone()  # type: ignore[misc]
            if prepared:
                found.append(f"server session {pid}: {prepared} prepared statement(s)")
            if settings:
                found.append(f"server session {pid}: settings {settings}")
    return found
