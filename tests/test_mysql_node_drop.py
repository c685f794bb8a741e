"""The old table of a shadow copy dropped on each Galera node by itself (dialects/mysql/node_drop.py),
on the real three-node cluster of ``.ci/topology/mariadb.sh``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import mysql_ddl
from llm_proxy_db.dialects.mysql import node_drop
from llm_proxy_db.errors import MigrationError
from tests.topology_mysql import (  # noqa: F401 - galera, galera_factory, galera_servers: fixtures
    Topology,
    execute,
    galera,
    galera_factory,
    galera_servers,
    goose1_with_tokens,
)

HEAD = "0007"
OLD_TABLES = ("_tokens_old", "_audit_events_old")


def _tables_on(url: sa.engine.URL) -> set[str]:
    """The node's tables once it has applied what the cluster ordered before (a causal read)."""
    return {str(row[0]) for row in execute(url, "SET SESSION wsrep_sync_wait = 1", "SHOW TABLES")}


def _synced(topology: Topology) -> None:
    """Every node still a Synced member of the three (a DDL that failed on one node expels it)."""
    for url in topology.urls:
        facts = dict(execute(url.set(database=None), "SHOW STATUS WHERE Variable_name IN "
                                                     "('wsrep_cluster_size', 'wsrep_local_state_comment')"))
        assert facts == {"wsrep_cluster_size": "3", "wsrep_local_state_comment": "Synced"}, (url, facts)


def _steps(events: list) -> list[str]:
    return [event.detail for event in events if event.kind == "step"]


def test_a_large_old_table_is_dropped_on_each_node_by_itself(galera: Topology, monkeypatch) -> None:  # noqa: F811
    goose1_with_tokens(galera, 2_000)
    monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0)  # every old table counts as large
    events: list = []
    result = commands.upgrade(galera.settings(0), progress=events.append)
    assert result.after == HEAD
    assert "audit_events: old table _audit_events_old dropped on each node by itself" in _steps(events)
    assert "tokens: old table _tokens_old dropped on each node by itself" in _steps(events)
    _synced(galera)
    for url in galera.urls:
        assert not _tables_on(url) & set(OLD_TABLES), url
        assert execute(url, "SET SESSION wsrep_sync_wait = 1", "SELECT count(*) FROM tokens") == [(2_000,)]


def test_a_small_old_table_is_dropped_under_toi(galera: Topology) -> None:  # noqa: F811
    goose1_with_tokens(galera, 200)
    events: list = []
    commands.upgrade(galera.settings(0), progress=events.append)
    assert "audit_events: old table _audit_events_old dropped" in _steps(events)
    _synced(galera)


@pytest.mark.parametrize("rerun", ["node by node", "plain drop"])
def test_a_drop_cut_short_between_nodes_is_finished_by_the_next_run(
    galera: Topology, monkeypatch, rerun: str  # noqa: F811
) -> None:
    """Killed after the swap, and after the old table's drop on node 2 only: the next run
    through node 1 drops it on the nodes that still hold it, every row in the new table, on
    the node-by-node path or the plain one (``IF EXISTS``: node 2 has no table to drop)."""
    goose1_with_tokens(galera, 500)
    commands.upgrade(galera.settings(0), "0006")

    def stop_after_swap(stage: str) -> None:
        if stage == "online copy of audit_events: tables swapped":
            raise RuntimeError("killed")

    monkeypatch.setattr(mysql_ddl, "step_hook", stop_after_swap)
    with pytest.raises((MigrationError, RuntimeError)):
        commands.upgrade(galera.settings(0))
    monkeypatch.setattr(mysql_ddl, "step_hook", None)
    with connect(galera.settings(1)) as node2:
        node_drop._drop_here(node2, "_audit_events_old")  # the first node of the drop, then the kill
    assert [("_audit_events_old" in _tables_on(url)) for url in galera.urls] == [True, False, True]
    assert "still to be dropped" in (commands.status(galera.settings(0)).partly_applied or "")
    monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0 if rerun == "node by node" else 1 << 40)
    events: list = []
    assert commands.upgrade(galera.settings(0), progress=events.append).after == HEAD
    how = " on each node by itself" if rerun == "node by node" else ""
    assert f"audit_events: old table _audit_events_old dropped{how}" in _steps(events)
    _synced(galera)
    for url in galera.urls:
        assert "_audit_events_old" not in _tables_on(url)
        assert execute(url, "SET SESSION wsrep_sync_wait = 1", "SELECT count(*) FROM audit_events") == [(10,)]


def test_a_copy_left_on_another_node_is_dropped_before_the_swap(galera: Topology) -> None:  # noqa: F811
    """A copy of ``_audit_events_old`` on node 2 alone would fail the swap's RENAME there: the
    replicated ``DROP TABLE IF EXISTS`` sent before the swap removes it, and no node leaves."""
    goose1_with_tokens(galera, 200)
    commands.upgrade(galera.settings(0), "0006")
    execute(galera.urls[1], "SET SESSION wsrep_on = OFF", "CREATE TABLE _audit_events_old (id INT PRIMARY KEY)")
    assert commands.upgrade(galera.settings(0)).after == HEAD
    _synced(galera)
    for url in galera.urls:
        assert "_audit_events_old" not in _tables_on(url)
        assert execute(url, "SET SESSION wsrep_sync_wait = 1", "SELECT count(*) FROM audit_events") == [(10,)]


def test_a_node_the_local_drop_missed_is_caught_by_the_replicated_drop(galera: Topology, monkeypatch) -> None:  # noqa: F811
    """A node that applies the swap after our drop there (or rejoins by IST) would keep the
    old table: the replicated ``DROP TABLE IF EXISTS`` after the local drops reaches it."""
    execute(galera.urls[0], "CREATE TABLE big (id INT PRIMARY KEY)")
    monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0)
    dropped_on: list[int] = []
    real_drop = node_drop._drop_here

    def misses_node_2(session, table):  # type: ignore[no-untyped-def]
        port = session.engine.url.port
        if port != galera.urls[1].port:
            real_drop(session, table)
            dropped_on.append(port)

    monkeypatch.setattr(node_drop, "_drop_here", misses_node_2)
    with connect(galera.settings(0)) as ours, connect(galera.settings(1)) as two, connect(galera.settings(2)) as three:
        assert node_drop.drop_node_by_node(ours, "big", [two, three]) is True
    assert dropped_on[-1] == galera.urls[0].port  # ours last
    for url in galera.urls:
        assert "big" not in _tables_on(url), url
    _synced(galera)


def test_a_session_outside_the_cluster_is_no_node(galera: Topology, monkeypatch, mysql_url) -> None:  # noqa: F811
    """A standalone server named among the nodes (a retired node, a wrong LLM_PROXY_GALERA_NODES)
    is not counted: the plain drop is used and nothing is dropped node by node."""
    execute(galera.urls[0], "CREATE TABLE big (id INT PRIMARY KEY)")
    monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0)
    standalone = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    try:
        with connect(galera.settings(0)) as ours, connect(galera.settings(1)) as two, standalone.connect() as alone:
            assert node_drop.drop_node_by_node(ours, "big", [two, alone]) is False
    finally:
        standalone.dispose()
    for url in galera.urls:
        assert "big" in _tables_on(url)


def test_without_the_right_to_switch_replication_off_nothing_is_dropped(galera: Topology, monkeypatch) -> None:  # noqa: F811
    """A user without SUPER gets the plain drop: the node-by-node path refuses
    before dropping anything."""
    database = galera.urls[0].database
    user = f"nodrop_{database[-8:]}"
    execute(galera.urls[0], f"CREATE USER '{user}'@'127.0.0.1'", f"GRANT ALL ON `{database}`.* TO '{user}'@'127.0.0.1'")
    try:
        execute(galera.urls[0], "CREATE TABLE big (id INT PRIMARY KEY)", "INSERT INTO big VALUES (1)")
        monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0)
        limited = [url.set(username=user, password=None) for url in galera.urls]
        engines = [sa.create_engine(url, poolclass=sa.pool.NullPool) for url in limited]
        try:
            sessions = [engine.connect() for engine in engines]
            assert node_drop.drop_node_by_node(sessions[0], "big", sessions[1:]) is False
            with connect(galera.settings(1)) as two, connect(galera.settings(2)) as three:
                # the others may, ours (dropped last) may not: still nothing dropped anywhere
                assert node_drop.drop_node_by_node(sessions[0], "big", [two, three]) is False
            for session in sessions:
                session.close()
        finally:
            for engine in engines:
                engine.dispose()
        for url in galera.urls:
            assert "big" in _tables_on(url)
    finally:
        execute(galera.urls[0], f"DROP USER '{user}'@'127.0.0.1'")


def test_an_unreached_node_keeps_the_plain_drop(galera: Topology, monkeypatch) -> None:  # noqa: F811
    execute(galera.urls[0], "CREATE TABLE big (id INT PRIMARY KEY)")
    monkeypatch.setattr(node_drop, "LOCAL_DROP_BYTES", 0)
    with connect(galera.settings(0)) as ours, connect(galera.settings(1)) as node2:
        assert node_drop.drop_node_by_node(ours, "big", [node2]) is False  # node 3 not among them
    for url in galera.urls:
        assert "big" in _tables_on(url)
