"""A MariaDB primary with an asynchronous GTID replica (.ci/topology/mariadb.sh): writing
commands refuse the replica (exit 3) before any lock, reads work there, and batched fills on
the primary pause while the replica lags."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.dialects import mysql_ddl
from llm_proxy_db.dialects.mysql import pacing as mysql_pacing
from tests.topology_mysql import Topology, cli, execute, goose1_with_tokens, replicated, replication_servers  # noqa: F401 - fixtures

READ_ONLY = "this server is read-only (a replica?)"
WRONG_CAUSES = ("privilege", "CREATE", "denied", "disk", "--no-backup")


def _wait_replayed(topology: Topology, sql: str, expected: object, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while _read(topology, sql) != expected:
        assert time.monotonic() < deadline, f"the replica never showed {expected} for {sql}"
        time.sleep(0.1)


def _read(topology: Topology, sql: str) -> object:
    try:
        return execute(topology.urls[1], sql)
    except sa.exc.ProgrammingError:  # the table is not there yet
        return None


def _refused(result) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert READ_ONLY in result.stderr and "point at the primary" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for wrong in WRONG_CAUSES:
        assert wrong not in result.stderr, (wrong, result.stderr)


def test_every_writing_command_refuses_the_replica(replicated: Topology, tmp_path: Path) -> None:  # noqa: F811
    replica = replicated.urls[1]
    _refused(cli(replica, "setup"))
    _refused(cli(replica, "migrate", "up", "--to", "0002"))
    assert execute(replica, "SHOW TABLES") == []  # nothing created, not even the run log
    assert cli(replicated.urls[0], "setup").returncode == 0
    _wait_replayed(replicated, "SELECT version_num FROM alembic_version", [("0007",)])
    tables = execute(replica, "SHOW TABLES")
    _refused(cli(replica, "migrate", "down", "--to", "0006"))
    dump = tmp_path / "primary.sql"
    assert cli(replicated.urls[0], "db", "backup", "--out", str(dump)).returncode == 0
    _refused(cli(replica, "db", "restore", str(dump), "--force"))
    _refused(cli(replica, "migrate", "rehearse"))  # its scratch database would be written there
    assert execute(replica, "SHOW TABLES") == tables
    assert not [name for (name,) in execute(replica, "SHOW DATABASES") if "_rehearsal_" in str(name)]
    assert execute(replica, "SELECT version_num FROM alembic_version") == [("0007",)]


def test_adopt_refuses_the_replica(replicated: Topology) -> None:  # noqa: F811
    goose1_with_tokens(replicated, 10)
    _wait_replayed(replicated, "SELECT count(*) FROM tokens", [(10,)])
    _refused(cli(replicated.urls[1], "migrate", "adopt"))
    assert cli(replicated.urls[1], "migrate", "adopt", "--dry-run").returncode == 0


def test_reads_work_on_the_replica(replicated: Topology, tmp_path: Path) -> None:  # noqa: F811
    assert cli(replicated.urls[0], "setup").returncode == 0
    _wait_replayed(replicated, "SELECT version_num FROM alembic_version", [("0007",)])
    status = cli(replicated.urls[1], "migrate", "status")
    assert status.returncode == 0 and "cluster:  replica of 127.0.0.1:" in status.stdout, status.stderr
    assert "read-only (read_only=ON)" in status.stdout
    assert cli(replicated.urls[1], "migrate", "log").returncode == 0
    assert cli(replicated.urls[1], "db", "backup", "--out", str(tmp_path / "r.sql")).returncode == 0
    primary = cli(replicated.urls[0], "migrate", "status", "--json")
    assert '"replicas": [' in primary.stdout and "primary of 1 replica(s)" in primary.stdout


def test_a_replicating_server_without_read_only_is_refused_too(replicated: Topology) -> None:  # noqa: F811
    """read_only off on a running replica: a change there would diverge from its primary."""
    server = replicated.urls[1].set(database=None)
    execute(server, "SET GLOBAL read_only = OFF")
    try:
        result = cli(replicated.urls[1], "setup")
    finally:
        execute(server, "SET GLOBAL read_only = ON")
    _refused(result)
    assert "it replicates from 127.0.0.1:" in result.stderr


@contextmanager
def _replica_held_back(topology: Topology, how: str) -> Iterator[None]:
    """The replica stops applying: its SQL thread stopped, or blocked by row locks a session
    holds there (the thread runs, Seconds_Behind_Master and the GTID clock grow)."""
    server = topology.urls[1].set(database=None)
    if how == "sql_thread_stopped":
        execute(server, "STOP SLAVE SQL_THREAD")
        try:
            yield
        finally:
            execute(server, "START SLAVE SQL_THREAD")
        return
    engine = sa.create_engine(topology.urls[1], poolclass=sa.pool.NullPool)
    with engine.connect() as holder:
        holder.exec_driver_sql("SELECT count(*) FROM tokens FOR UPDATE").all()
        try:
            yield
        finally:
            holder.rollback()
    engine.dispose()


@pytest.mark.parametrize("how", ["sql_thread_stopped", "rows_locked"])
def test_the_fill_pauses_while_the_replica_lags(replicated: Topology, monkeypatch, how: str) -> None:  # noqa: F811
    """The replica held back (STOP SLAVE SQL_THREAD, or its SQL thread waiting for row locks):
    0005's fill on the primary pauses, shown in the progress, until the replica catches up;
    then setup finishes."""
    tokens = 5_000
    goose1_with_tokens(replicated, tokens)
    _wait_replayed(replicated, "SELECT count(*) FROM tokens", [(tokens,)])
    monkeypatch.setattr(mysql_ddl, "FILL_BATCH", 500)
    monkeypatch.setattr(mysql_ddl, "FILL_MIN", 500)
    monkeypatch.setattr(mysql_ddl, "FILL_MAX", 500)
    monkeypatch.setattr(mysql_ddl, "batch_hook", lambda rows: time.sleep(0.3))  # a slower, longer fill
    monkeypatch.setattr(mysql_pacing, "REPORT_EVERY_S", 0.5)
    events: list = []
    lagging = threading.Event()

    def progress(event) -> None:  # type: ignore[no-untyped-def]
        events.append(event)
        if event.kind == "throttle" and event.detail.startswith("paused:") and (
            how == "sql_thread_stopped" or "unknown" not in event.detail and "lag 2." in event.detail
        ):
            lagging.set()

    result: dict[str, object] = {}
    with _replica_held_back(replicated, how):
        runner = threading.Thread(target=lambda: result.update(run=commands.upgrade(replicated.settings(0),
                                                                                    progress=progress)))
        runner.start()
        assert lagging.wait(60), [e.detail for e in events if e.kind == "throttle"]
        assert runner.is_alive()  # still waiting for the replica
    runner.join(120)
    assert result["run"].after == "0007"  # type: ignore[attr-defined]
    details = [e.detail for e in events if e.kind == "throttle"]
    print(details)
    expected = "paused: replica lag " + ("unknown, SQL thread stopped" if how == "sql_thread_stopped" else "2.")
    assert any(d.startswith(expected) for d in details), details
    assert any(d.startswith("resumed after") for d in details), details
    _wait_replayed(replicated, "SELECT count(*) FROM tokens WHERE id IS NULL", [(0,)])


def test_the_lag_wait_can_be_switched_off(replicated: Topology, monkeypatch) -> None:  # noqa: F811
    goose1_with_tokens(replicated, 2_000)
    _wait_replayed(replicated, "SELECT count(*) FROM tokens", [(2_000,)])
    monkeypatch.setenv("LLM_PROXY_MAX_REPLICA_LAG", "0")
    server = replicated.urls[1].set(database=None)
    execute(server, "STOP SLAVE SQL_THREAD")
    events: list = []
    try:
        assert commands.upgrade(replicated.settings(0), progress=events.append).after == "0007"
    finally:
        execute(server, "START SLAVE SQL_THREAD")
    assert not [e for e in events if e.kind == "throttle"]


@pytest.mark.parametrize("entry", ["host_port", "url"])
def test_replicas_can_be_named(replicated: Topology, monkeypatch, entry: str) -> None:  # noqa: F811
    """LLM_PROXY_MYSQL_REPLICA_URLS names replicas SHOW SLAVE HOSTS does not list (a name it
    lists too is watched once)."""
    replica = replicated.urls[1]
    named = f"{replica.host}:{replica.port}" if entry == "host_port" else (
        replica.render_as_string(hide_password=False).replace("mysql+pymysql://", "mysql://"))
    monkeypatch.setenv(mysql_pacing.REPLICA_URLS_ENV, f"{named},127.0.0.1:1")
    reports: list[tuple[str, str]] = []
    engine = sa.create_engine(replicated.urls[0])
    report = lambda kind, detail: reports.append((kind, detail))  # noqa: E731
    with engine.connect() as connection, mysql_pacing.Pacer.open(connection, report) as pacer:
        assert [r.address for r in pacer._replicas] == [f"{replica.host}:{replica.port}"]
        assert pacer.behind() is None
    engine.dispose()
    assert any("cannot reach 127.0.0.1:1 to watch its lag, left out" in d for _, d in reports), reports
