"""Every PostgreSQL revision waits for a table lock briefly, retries, reports, and never deadlocks.

A second connection plays the service: it holds a lock on the table a revision changes, or
inserts tokens while 0003 runs.  Multi-transaction revisions (0003, 0007) are stopped at
each of their boundaries and finished by a second run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, MigrationError, SchemaMismatchError
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.executor import ProgressEvent
from tests.seed import seed

pytestmark = pytest.mark.postgresql

# Each revision that changes an existing table, and a table it changes.
CHANGED_TABLES = {"0003": "projects", "0004": "tokens", "0005": "tokens", "0006": "projects", "0007": "audit_events"}
PREVIOUS = {"0003": "0002", "0004": "0003", "0005": "0004", "0006": "0005", "0007": "0006"}


@pytest.fixture
def pg(postgres_url: URL, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with a short lock timeout and two attempts, so a busy table fails in well under a second."""
    monkeypatch.setenv("LLM_PROXY_TABLE_LOCK_TIMEOUT", "100ms")
    monkeypatch.setenv("LLM_PROXY_LOCK_RETRIES", "2")
    return Settings(driver="postgres", database_url=postgres_url)


@pytest.mark.parametrize(("revision", "table"), CHANGED_TABLES.items())
def test_a_busy_table_times_out_retries_and_reports(pg: Settings, revision: str, table: str) -> None:
    """A transaction holding the table: the revision gives up after its retries, saying so."""
    commands.upgrade(pg, PREVIOUS[revision])
    events: list[ProgressEvent] = []
    started = time.monotonic()
    with connect(pg) as holder:
        holder.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS SHARE MODE")
        with pytest.raises(MigrationError, match="lock timeout"):
            commands.upgrade(pg, revision, progress=events.append)
        holder.rollback()
    assert time.monotonic() - started < 10
    retries = [event for event in events if event.kind == "lock_retry"]
    assert retries and all(event.revision == revision for event in retries)
    assert commands.status(pg).current_revision == PREVIOUS[revision]
    assert commands.upgrade(pg, revision).after == revision


@pytest.mark.parametrize("revision", ["0003", "0004", "0006", "0007"])
def test_a_busy_table_makes_a_downgrade_retry_in_short_waits(pg: Settings, revision: str) -> None:
    """Downgrades wait for ACCESS EXCLUSIVE in short attempts too: with the table held, each
    attempt gives up within the short lock wait, is reported, and the database is unchanged."""
    commands.upgrade(pg, revision)
    events: list[ProgressEvent] = []
    with connect(pg) as holder:
        holder.exec_driver_sql(f"LOCK TABLE {CHANGED_TABLES[revision]} IN ACCESS SHARE MODE")
        started = time.monotonic()
        with pytest.raises(MigrationError, match="lock timeout"):
            commands.downgrade(pg, PREVIOUS[revision], progress=events.append, allow_data_loss=True)
        waited = time.monotonic() - started
        holder.rollback()
    assert [event for event in events if event.kind == "lock_retry"]
    assert waited < 10
    assert commands.status(pg).current_revision == revision
    assert commands.downgrade(pg, PREVIOUS[revision], allow_data_loss=True).after == PREVIOUS[revision]


@pytest.mark.parametrize("revision", ["0003", "0007"])
def test_a_lock_released_soon_costs_a_retry_not_a_failure(
    pg: Settings, revision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder commits once the revision has retried: it succeeds and counts its retries."""
    monkeypatch.setenv("LLM_PROXY_LOCK_RETRIES", "5")
    commands.upgrade(pg, PREVIOUS[revision])
    locked, retried = threading.Event(), threading.Event()

    def hold() -> None:
        with connect(pg) as holder:
            holder.exec_driver_sql(f"LOCK TABLE {CHANGED_TABLES[revision]} IN ACCESS SHARE MODE")
            locked.set()
            retried.wait(30)
            holder.rollback()

    def seen(event: ProgressEvent) -> None:
        if event.kind == "lock_retry":
            retried.set()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(10)
    try:
        result = commands.upgrade(pg, revision, progress=seen)
    finally:
        retried.set()
        thread.join()
    assert result.after == revision and result.steps[0].lock_retries >= 1


def stop_at(boundary: str) -> Callable[[str], None]:
    """A boundary hook that stops the run at ``boundary``, as a kill there would."""

    def stop(name: str) -> None:
        if name == boundary:
            raise RuntimeError(f"stopped at {name}")

    return stop


BOUNDARIES = {
    "0003": ["projects.is_active added", "projects.deactivated_at added", "tokens.deactivated_at added"],
    "0004": ["tokens.cache_hit_count added"],
    "0006": ["projects.openai_api_key renamed to api_key"],
    "0007": ["outcome check replaced (NOT VALID)", "outcome check validated"],
}


@pytest.mark.parametrize(
    ("revision", "boundary"), [(rev, name) for rev, names in BOUNDARIES.items() for name in names]
)
def test_stopped_at_a_boundary_the_next_run_finishes(
    pg: Settings, revision: str, boundary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0003, 0004, 0006 and 0007 commit their changes apart from the version: a stop at any
    boundary is finished by a rerun."""
    commands.upgrade(pg, PREVIOUS[revision])
    with connect(pg) as connection:
        seed(connection, projects=3, tokens=20, events=20)
    monkeypatch.setattr(pg_online, "boundary_hook", stop_at(boundary))
    with pytest.raises(MigrationError, match="stopped at"):
        commands.upgrade(pg, revision)
    monkeypatch.setattr(pg_online, "boundary_hook", None)
    assert commands.upgrade(pg).after == "0007"
    with connect(pg) as connection:
        counts = connection.exec_driver_sql(
            "SELECT (SELECT count(*) FROM projects), (SELECT count(*) FROM tokens), "
            "(SELECT count(*) FROM audit_events)"
        ).one()
    assert tuple(counts) == (3, 20, 20)


# A stop after a committed step leaves the database at the revision below with part of the
# next one: status says so, and a downgrade is refused until the upgrade is finished.
PARTLY_AT = {
    "0003": "projects.deactivated_at added",
    "0004": "tokens.cache_hit_count added",
    "0005": "tokens.id added",
    "0007": "outcome check replaced (NOT VALID)",
}


@pytest.mark.parametrize(("revision", "boundary"), PARTLY_AT.items())
def test_a_partly_applied_revision_is_reported_and_blocks_a_downgrade(
    pg: Settings, revision: str, boundary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands.upgrade(pg, PREVIOUS[revision])
    monkeypatch.setattr(pg_online, "boundary_hook", stop_at(boundary))
    with pytest.raises(MigrationError, match="failed part-way"):
        commands.upgrade(pg, revision)
    monkeypatch.setattr(pg_online, "boundary_hook", None)
    status = commands.status(pg)
    assert status.current_revision == PREVIOUS[revision]
    assert status.partly_applied and status.partly_applied.startswith(f"{revision} partly applied")
    with pytest.raises(SchemaMismatchError, match="cannot downgrade") as refused:
        commands.downgrade(pg, "0001")
    assert f"migrate up --to {revision}" in (refused.value.hint or "")
    assert commands.status(pg).current_revision == PREVIOUS[revision]  # nothing was changed
    assert commands.upgrade(pg, revision).after == revision
    assert commands.status(pg).partly_applied is None
    assert commands.downgrade(pg, "0001", allow_data_loss=True).after == "0001"


def test_0006_downgrade_is_one_transaction_with_its_version(pg: Settings) -> None:
    """The downgrade's rename is not committed apart from the version: a failure after it
    leaves 0006 whole (a later upgrade would skip 0006 and keep the old name at head)."""
    commands.upgrade(pg, "0006")
    with connect(pg) as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION no_goose_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'goose table is read-only'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER no_goose_delete BEFORE DELETE ON goose_db_version "
            "FOR EACH ROW EXECUTE FUNCTION no_goose_delete()"
        )
        connection.commit()
    with pytest.raises(MigrationError, match="rolled back"):
        commands.downgrade(pg, "0005")
    with connect(pg) as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("projects")}
        connection.exec_driver_sql("DROP TRIGGER no_goose_delete ON goose_db_version")
        connection.commit()
    assert "api_key" in columns and "openai_api_key" not in columns
    assert commands.downgrade(pg, "0005").after == "0005"
    assert commands.upgrade(pg).after == "0007"


def test_0003_does_not_deadlock_with_token_inserts(pg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token inserts (tokens, then a projects row) run throughout 0003, up and down, three times."""
    monkeypatch.setenv("LLM_PROXY_TABLE_LOCK_TIMEOUT", "1s")
    monkeypatch.setenv("LLM_PROXY_LOCK_RETRIES", "5")
    commands.upgrade(pg, "0002")
    with connect(pg) as connection:
        seed(connection, projects=3, tokens=0, events=0)
    stop, errors, inserted = threading.Event(), [], [0]

    def insert_tokens() -> None:
        with connect(pg) as service:
            while not stop.is_set():
                try:
                    service.exec_driver_sql(
                        "INSERT INTO tokens (token, project_id) SELECT %(t)s, id FROM projects LIMIT 1",
                        {"t": uuid.uuid4().hex},
                    )
                    service.exec_driver_sql("SELECT pg_sleep(0.01)")
                    service.commit()
                    inserted[0] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is a finding
                    errors.append(exc)
                    service.rollback()

    threads = [threading.Thread(target=insert_tokens) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            commands.upgrade(pg, "0003")
            commands.downgrade(pg, "0002")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == [] and inserted[0] > 0


def test_retry_setting_is_validated() -> None:
    """LLM_PROXY_LOCK_RETRIES takes a whole number from 1 to 100, nothing else."""
    assert pg_online.lock_retries({}) == 5
    assert pg_online.lock_retries({"LLM_PROXY_LOCK_RETRIES": "3"}) == 3
    with pytest.raises(ConfigError, match="LLM_PROXY_LOCK_RETRIES"):
        pg_online.lock_retries({"LLM_PROXY_LOCK_RETRIES": "0"})


def test_a_terminated_migrator_stops_its_server_work(pg: Settings, postgres_url: URL) -> None:
    """SIGTERM to a migrator waiting for a lock: its backend is gone within two seconds."""
    commands.upgrade(pg, "0006")
    url = postgres_url.render_as_string(hide_password=False)
    env = {**os.environ, "DB_DRIVER": "postgres", "DATABASE_URL": url,
           "LLM_PROXY_TABLE_LOCK_TIMEOUT": "0"}  # would wait for ever
    with connect(pg) as holder, connect(pg) as watcher:
        holder.exec_driver_sql("LOCK TABLE audit_events IN ACCESS SHARE MODE")
        holder.exec_driver_sql("SELECT 1")
        child = subprocess.Popen(
            [sys.executable, "-m", "llm_proxy_db", "migrate", "up"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            assert _waiting_backends(watcher, wanted=1, within=30) == 1, child.stderr
            child.send_signal(signal.SIGTERM)
            child.wait(10)
            assert _waiting_backends(watcher, wanted=0, within=2) == 0
        finally:
            child.kill()
            child.wait()
        holder.rollback()
    assert child.returncode != 0
    assert commands.status(pg).current_revision == "0006"


def _waiting_backends(connection, *, wanted: int, within: float) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        count = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).scalar()
        connection.rollback()  # pg_stat_activity is a snapshot per transaction
        if count == wanted or time.monotonic() > deadline:
            return int(count)
        time.sleep(0.05)
