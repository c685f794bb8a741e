"""Every wait has a bound: reads and introspection too (issue 21, item 15).

Adoption's read of ``goose_db_version`` waited without bound while another session held a lock
on it (``setup --lock-timeout 5`` still waiting after 15 s).  Every statement the tool runs may
wait for a lock at most ``--lock-timeout`` (PostgreSQL ``lock_timeout`` per transaction, MySQL
``lock_wait_timeout``/``innodb_lock_wait_timeout`` per session, SQLite's busy timeout); a wait
that runs out is exit 7 with a hint naming what was waited for.  The CLI runs in a subprocess
(a hang must fail the test, not stall it); no timing is asserted beyond "well before forever".
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.postgresql.locks import SERVICE_LOCK_KEY
from tests import legacy
from tests.safety_helpers import settings_env

CLI = Path(sys.executable).with_name("llm-proxy")
LOCKS = {
    "postgresql": ["BEGIN", "LOCK TABLE goose_db_version IN ACCESS EXCLUSIVE MODE"],
    "mysql": ["LOCK TABLES goose_db_version WRITE"],
}


def _goose_shape(dialect: str) -> legacy.Legacy:
    return next(shape for shape in legacy.shapes(dialect) if shape.goose_version)


def _setup(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "setup", "--lock-timeout", "2", "--no-backup"], env=settings_env(settings),
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    "dialect",
    [pytest.param("postgresql", marks=pytest.mark.postgresql), pytest.param("mysql", marks=pytest.mark.mysql)],
)
def test_a_locked_goose_table_is_waited_for_at_most_the_lock_timeout(settings: Settings, dialect: str) -> None:
    legacy.create(settings, _goose_shape(dialect))
    with connect(settings) as holder:
        for statement in LOCKS[dialect]:
            holder.exec_driver_sql(statement)
        result = _setup(settings)  # the lock is held meanwhile
        holder.rollback()
    assert result.returncode == 7, result.stdout + result.stderr
    assert "goose_db_version" in result.stderr and "--lock-timeout" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_locked_sqlite_file_is_waited_for_at_most_the_lock_timeout(sqlite_settings: Settings) -> None:
    """Another connection holds the write lock: the migration's write transaction waits for it
    at most --lock-timeout (the busy timeout was 30 s whatever --lock-timeout said)."""
    legacy.create(sqlite_settings, next(s for s in legacy.shapes("sqlite") if s.name == "L1"))
    assert sqlite_settings.database_path is not None
    holder = sqlite3.connect(sqlite_settings.database_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = _setup(sqlite_settings)
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 7, result.stdout + result.stderr
    assert "--lock-timeout" in result.stderr, result.stderr


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_a_stamp_blocked_by_a_lock_is_exit_7_not_a_refused_adoption(settings: Settings) -> None:
    """The adoption's stamp transaction writes goose_db_version: a lock held on it is a wait
    that ran out (exit 7), not 'the database refused the adoption's writes' (exit 4)."""
    from llm_proxy_db import commands
    from llm_proxy_db.errors import LockTimeoutError

    legacy.create(settings, _goose_shape("postgresql"))
    with connect(settings) as holder:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE goose_db_version IN EXCLUSIVE MODE")  # reads pass, writes wait
        with pytest.raises(LockTimeoutError) as raised:
            commands.setup(settings, lock_timeout=1, no_backup=True)
        holder.rollback()
    assert raised.value.exit_code == 7 and "goose_db_version" in raised.value.message


@pytest.mark.parametrize(
    "dialect",
    [pytest.param("postgresql", marks=pytest.mark.postgresql), pytest.param("mysql", marks=pytest.mark.mysql)],
)
def test_the_fast_read_of_a_locked_version_table_is_bounded_too(settings: Settings, dialect: str) -> None:
    """At head, ``setup`` is one read of alembic_version (the fast path, bare drivers)."""
    from llm_proxy_db import commands

    commands.upgrade(settings, no_backup=True)
    lock = {"postgresql": ["BEGIN", "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"],
            "mysql": ["LOCK TABLES alembic_version WRITE"]}[dialect]
    with connect(settings) as holder:
        for statement in lock:
            holder.exec_driver_sql(statement)
        result = _setup(settings)
        holder.rollback()
    assert result.returncode == 7, result.stdout + result.stderr
    assert "alembic_version" in result.stderr and "waited 2s" in result.stderr, result.stderr


# Issue 21 hostile review, F5c: ``setup --lock-timeout 5`` gave up after 11 s.  The read of a
# locked goose_db_version ran out once before the migration lock (adoption's precheck, which
# swallowed the failure) and then again under it; and the wait for the service's own goose
# lock ignored --lock-timeout (LLM_PROXY_LOCK_TIMEOUT or 300 s).  Timed in-process, so the
# interpreter's start-up does not count.
BOUND = 3.0
SLACK = 1.0


@pytest.mark.parametrize(
    "dialect",
    [pytest.param("postgresql", marks=pytest.mark.postgresql), pytest.param("mysql", marks=pytest.mark.mysql)],
)
def test_the_whole_wait_for_a_locked_goose_table_is_the_bound_not_twice(settings: Settings, dialect: str) -> None:
    from llm_proxy_db import commands
    from llm_proxy_db.errors import LockTimeoutError

    legacy.create(settings, _goose_shape(dialect))
    commands.status(settings)  # imports and known states loaded: only the wait is timed
    with connect(settings) as holder:
        for statement in LOCKS[dialect]:
            holder.exec_driver_sql(statement)
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            commands.setup(settings, lock_timeout=BOUND, no_backup=True)
        waited = time.monotonic() - started
        holder.rollback()
    assert waited < BOUND + SLACK, f"gave up after {waited:.1f}s for --lock-timeout {BOUND:g}"


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_the_wait_for_the_services_goose_lock_follows_the_option(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service is starting (it holds its goose lock): --lock-timeout bounds that wait too."""
    from llm_proxy_db import commands
    from llm_proxy_db.errors import LockTimeoutError

    monkeypatch.setenv("LLM_PROXY_LOCK_TIMEOUT", str(BOUND * 4))  # what the wait used, whatever the option said
    legacy.create(settings, _goose_shape("postgresql"))
    commands.status(settings)
    with connect(settings) as holder:
        holder.exec_driver_sql(f"SELECT pg_advisory_lock({SERVICE_LOCK_KEY})")
        holder.commit()
        started = time.monotonic()
        try:
            with pytest.raises(LockTimeoutError, match="service's migration lock"):
                commands.setup(settings, lock_timeout=BOUND, no_backup=True)
            waited = time.monotonic() - started
        finally:
            holder.exec_driver_sql(f"SELECT pg_advisory_unlock({SERVICE_LOCK_KEY})")
            holder.commit()
    assert waited < BOUND + SLACK, f"gave up after {waited:.1f}s for --lock-timeout {BOUND:g}"
