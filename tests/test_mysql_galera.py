"""A three-node Galera cluster (.ci/topology/mariadb.sh): recognised, locked on every node,
certification conflicts retried.  Each test has its own database, created through node 1."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.adoption.service_wait import wait_for_the_service
from llm_proxy_db.cli.render import render_status
from llm_proxy_db.config.parsing import GALERA_NODES_ENV
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for, mysql_ddl
from llm_proxy_db.errors import DatabaseConnectionError
from llm_proxy_db.safety import locking
from tests.topology_mysql import (  # noqa: F401 - galera, galera_factory, galera_servers: fixtures
    Topology,
    cli,
    execute,
    galera,
    galera_factory,
    galera_servers,
    goose1_with_tokens,
    replication_servers,
)

HEAD = "0007"
SERVICE_LOCK = "llm-proxy-migrations"


def test_status_says_galera(galera: Topology) -> None:  # noqa: F811
    status = commands.status(galera.settings(1))
    assert status.topology is not None
    assert status.topology["galera"]["nodes"] == 3
    assert status.topology["galera"]["state"] == "Synced"
    assert "cluster:  Galera cluster: 3 nodes, Synced (Primary component, DDL as TOI)" in render_status(status)
    result = cli(galera.urls[2], "migrate", "status", "--json")
    assert '"summary": "Galera cluster: 3 nodes, Synced' in result.stdout, result.stderr


def test_status_at_head_says_galera_too(galera: Topology) -> None:  # noqa: F811
    commands.upgrade(galera.settings(0))
    result = cli(galera.urls[1], "migrate", "status")
    assert result.returncode == 0, result.stderr
    assert "cluster:  Galera cluster: 3 nodes, Synced" in result.stdout


def _recorded_once(topology: Topology) -> None:
    """One alembic_version row, no goose version twice, every revision run once."""
    url = topology.urls[2]
    assert execute(url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    goose = [row[0] for row in execute(url, "SELECT version_id FROM goose_db_version")]
    assert len(goose) == len(set(goose)), goose
    runs = execute(url, "SELECT revision, count(*) FROM llm_proxy_run_log WHERE action = 'upgrade' "
                        "AND outcome = 'success' GROUP BY revision HAVING count(*) > 1")
    assert runs == [], runs


@pytest.mark.parametrize("round_", range(10))
def test_two_setups_through_two_nodes_one_migrates(galera_factory: Callable[[], Topology], round_: int) -> None:  # noqa: F811
    """Two `setup` at once, through node 1 and node 2: both exit 0, one migrates, nothing twice."""
    topology = galera_factory()
    first, second = topology.urls[round_ % 2], topology.urls[1 - round_ % 2]
    results: dict[int, subprocess.CompletedProcess[str]] = {}
    threads = [threading.Thread(target=lambda i=i, u=u: results.__setitem__(i, cli(u, "setup")))
               for i, u in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i].returncode for i in (0, 1)] == [0, 0], [results[i].stderr for i in (0, 1)]
    migrated = [i for i in (0, 1) if f"base -> {HEAD}" in results[i].stdout]
    idle = [i for i in (0, 1) if f"{HEAD} (nothing to do)" in results[i].stdout]
    assert len(migrated) == 1 and len(idle) == 1, [results[i].stdout for i in (0, 1)]
    _recorded_once(topology)


def _try_lock(url: sa.engine.URL, name: str) -> int:
    return int(execute(url, f"SELECT GET_LOCK('{name}', 0)")[0][0])  # type: ignore[call-overload]


@pytest.mark.parametrize("round_", range(10))
def test_the_service_lock_is_refused_on_every_node_while_the_schema_changes(galera: Topology, round_: int) -> None:  # noqa: F811
    """While `setup` (through node 1) changes the schema, a service starting on node 2 or 3
    gets 0 from GET_LOCK('llm-proxy-migrations', 0); so does another migrator's own lock."""
    seen: list[tuple[str, int, int]] = []
    target = galera.urls[1 + round_ % 2]
    ours = f"llm-proxy-db-migrations:{galera.urls[0].database}"

    def during(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "apply_start":
            seen.append((event.revision, _try_lock(target, SERVICE_LOCK), _try_lock(target, ours)))

    commands.upgrade(galera.settings(0), progress=during)
    assert [revision for revision, _, _ in seen] == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    assert all(service == 0 and own == 0 for _, service, own in seen), seen
    assert _try_lock(target, SERVICE_LOCK) == 1  # released afterwards (the session above ended)


def test_our_own_node_sessions_are_not_a_service_migrating(galera: Topology) -> None:  # noqa: F811
    """Under our cluster lock, the service's lock held by our own node sessions is not waited
    for (setup from goose-1 waited the whole lock timeout for itself); a stranger's hold is."""
    settings = galera.settings(0)
    with connect(settings) as connection, locking.migration_lock(settings, connection, timeout=10):
        started = time.monotonic()
        assert wait_for_the_service(connection, timeout=2) < 1
        assert time.monotonic() - started < 1
    stranger = sa.create_engine(galera.urls[0], poolclass=sa.pool.NullPool)
    with stranger.connect() as holder, connect(settings) as connection:
        assert holder.exec_driver_sql(f"SELECT GET_LOCK('{SERVICE_LOCK}', 0)").scalar() == 1
        assert dialect_for(connection).service_migrating(connection)
    stranger.dispose()


def test_an_unreachable_node_is_refused_before_anything(galera: Topology, monkeypatch) -> None:  # noqa: F811
    addresses = ",".join(f"{u.host}:{u.port}" for u in galera.urls[:2]) + ",127.0.0.1:1"
    monkeypatch.setenv(GALERA_NODES_ENV, addresses)
    with pytest.raises(DatabaseConnectionError, match=r"cannot reach Galera node 127\.0\.0\.1:1 .*nothing was locked"):
        commands.upgrade(galera.settings(0))
    assert execute(galera.urls[0], "SHOW TABLES") == []
    result = cli(galera.urls[0], "setup", env={GALERA_NODES_ENV: addresses})
    assert result.returncode == 3 and "Hint:" in result.stderr and "Traceback" not in result.stderr


def test_the_node_list_can_be_given(galera: Topology, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv(GALERA_NODES_ENV, ",".join(f"{u.host}:{u.port}" for u in galera.urls))
    assert commands.upgrade(galera.settings(0)).after == HEAD


def test_a_node_that_is_not_synced_is_refused(galera: Topology) -> None:  # noqa: F811
    """A desynced node (a donor, a node in maintenance) is refused for writes, exit 3."""
    node = galera.urls[2].set(database=None)
    execute(node, "SET GLOBAL wsrep_desync = ON")
    try:
        deadline = time.monotonic() + 10
        while execute(node, "SHOW STATUS LIKE 'wsrep_local_state_comment'")[0][1] == "Synced":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        result = cli(galera.urls[2], "setup")
        assert result.returncode == 3, result.stderr
        assert "this Galera node is Donor/Desynced" in result.stderr and "point at a Synced node" in result.stderr
        assert cli(galera.urls[2], "migrate", "status").returncode == 0  # reads keep working
    finally:
        execute(node, "SET GLOBAL wsrep_desync = OFF")
    assert execute(galera.urls[0], "SHOW TABLES") == []


# -- certification conflicts ------------------------------------------------------------------

def _counter_updates(url: sa.engine.URL, tokens: int, stop: threading.Event, errors: list[str]) -> None:
    """The service's request-counter UPDATE in a tight loop on one node (autocommit)."""
    import random

    import pymysql

    connection = pymysql.connect(host=url.host, port=url.port, user=url.username, database=url.database,
                                 autocommit=True)
    rng = random.Random(7)
    try:
        while not stop.is_set():
            token = f"tok_{1 + rng.randrange(tokens):028d}"
            try:
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE tokens SET request_count = request_count + 1, last_used_at = NOW(6) "
                                   "WHERE token = %s", (token,))
            except pymysql.MySQLError as exc:  # the service's own write losing a conflict is the service's
                errors.append(str(exc.args[0]))
    finally:
        connection.close()


@pytest.mark.parametrize("round_", range(3))  # 11-22 s each; each of the 6 rounds printed had conflicts
def test_setup_with_counter_updates_on_another_node(galera: Topology, monkeypatch, round_: int) -> None:  # noqa: F811
    """The service's request-counter UPDATEs on node 2 while setup runs on node 1: 0005's
    fill batches that lose a certification conflict are retried, setup succeeds."""
    tokens = 20_000
    goose1_with_tokens(galera, tokens)
    monkeypatch.setattr(mysql_ddl, "FILL_BATCH", 500)
    monkeypatch.setattr(mysql_ddl, "FILL_MIN", 500)
    monkeypatch.setattr(mysql_ddl, "FILL_MAX", 500)
    stop, errors = threading.Event(), []
    writers = [threading.Thread(target=_counter_updates, args=(galera.urls[1], tokens, stop, errors))
               for _ in range(3)]
    events: list = []
    for writer in writers:
        writer.start()
    try:
        result = commands.upgrade(galera.settings(0), progress=events.append)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert result.after == HEAD
    for url in galera.urls:  # no node left the cluster (a DDL that failed on one node expels it)
        facts = dict(execute(url.set(database=None), "SHOW STATUS WHERE Variable_name IN "
                                                     "('wsrep_cluster_size', 'wsrep_local_state_comment')"))
        assert facts == {"wsrep_cluster_size": "3", "wsrep_local_state_comment": "Synced"}, (url, facts)
    assert execute(galera.urls[2], "SELECT count(*) FROM tokens WHERE id IS NULL") == [(0,)]
    assert execute(galera.urls[2], "SELECT count(*) FROM tokens") == [(tokens,)]
    retries = [e.detail for e in events if e.kind == "throttle" and "certification conflict" in e.detail]
    pauses = [e.detail for e in events if e.kind == "throttle" and e.detail.startswith("resumed")]
    codes = sorted(Counter(errors).items())
    print(f"round {round_}: {len(retries)} batch retries, service write errors {codes}, {len(pauses)} pauses")


def test_topology_bench_smoke(galera_servers, replication_servers, tmp_path) -> None:  # noqa: F811
    """``bench/run.py --smoke --cases galera,mysql-replica``: setup exits 0 on the cluster with
    the service's writes on every node, both lag modes run, the tables are printed."""
    import json
    import sys

    out = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--cases", "galera,mysql-replica", "--out", str(tmp_path),
         "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Galera goose-1 to head" in out.stdout and "replica lag, goose-1 to head" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    results = json.loads(saved.read_text())
    (galera_case,) = results["galera"].values()
    assert [r["exit_code"] for r in galera_case["rounds"]] == [0]
    assert all(len(r["per_node"]) == 3 and all(p["write"]["n"] > 0 for p in r["per_node"])
               for r in galera_case["rounds"])
    (replica_case,) = results["mysql-replica"].values()
    assert [r["exit_code"] for r in replica_case["bounded"] + replica_case["unbounded"]] == [0, 0]
