"""The MySQL topology primitives: GTID positions, the reasons a server is refused for writes,
the pace of a batched phase (conflict retries, Galera flow control) on real servers."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa

from llm_proxy_db.config.parsing import parse_addresses
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import mysql
from llm_proxy_db.dialects.mysql import pacing as mysql_pacing
from llm_proxy_db.dialects.mysql.topology import (
    GaleraState,
    ReplicaChannel,
    Topology,
    galera_nodes,
    parse_gtid_position,
    reached,
    topology,
    unwritable_reason,
)
from llm_proxy_db.errors import ConfigError
from tests.topology_mysql import galera, galera_factory, galera_servers  # noqa: F401 - fixtures

SYNCED = GaleraState(3, "Primary", "Synced", ("127.0.0.1:33061", "127.0.0.1:33062"), "TOI", 0.0, 0)


def test_gtid_positions_compare_per_domain() -> None:
    primary = parse_gtid_position("0-71-120,1-72-9")
    assert primary == {(0, 71): 120, (1, 72): 9}
    assert reached(parse_gtid_position("0-71-120,1-72-9"), primary)
    assert reached(parse_gtid_position("0-73-121,1-72-10"), primary)  # another server id, same domain
    assert not reached(parse_gtid_position("0-71-119,1-72-9"), primary)
    assert not reached(parse_gtid_position("0-71-120"), primary)  # domain 1 never seen
    assert parse_gtid_position("") == {} and parse_gtid_position("junk,0-1") == {}


def test_the_reasons_a_server_is_refused() -> None:
    assert unwritable_reason(Topology()) is None
    assert unwritable_reason(Topology(galera=SYNCED)) is None
    assert "read_only=ON" in str(unwritable_reason(Topology(read_only=("read_only",))))
    running = ReplicaChannel("", "db1:3306", True, True, 0)
    assert "it replicates from db1:3306" in str(unwritable_reason(Topology(channels=(running,))))
    promoted = ReplicaChannel("", "db1:3306", False, False, None)  # a former replica's stopped channel
    assert unwritable_reason(Topology(channels=(promoted,))) is None
    donor = GaleraState(3, "Primary", "Donor/Desynced", (), "TOI", 0.0, 0)
    assert "Donor/Desynced" in str(unwritable_reason(Topology(galera=donor)))
    split = GaleraState(1, "non-Primary", "Initialized", (), "TOI", 0.0, 0)
    assert "non-Primary" in str(unwritable_reason(Topology(galera=split)))


def test_descriptions() -> None:
    assert Topology().describe() is None and Topology().as_dict() is None
    stopped = ReplicaChannel("", "db1:3306", True, False, None)
    text = Topology(channels=(stopped,), read_only=("read_only",)).describe()
    assert text == "replica of db1:3306 (SQL thread stopped); read-only (read_only=ON)"
    assert SYNCED.describe() == "Galera cluster: 3 nodes, Synced (Primary component, DDL as TOI)"
    assert galera_nodes(SYNCED, ("a:1", "b:2")) == ("a:1", "b:2")
    assert galera_nodes(SYNCED) == SYNCED.addresses


@pytest.mark.parametrize(("name", "raw", "urls"), [
    ("LLM_PROXY_GALERA_NODES", "10.0.0.1:3306,db2", False),
    ("LLM_PROXY_GALERA_NODES", "mysql://u:secret@db:3306/x", False),
    ("LLM_PROXY_MYSQL_REPLICA_URLS", "db:99999", True),
])
def test_named_servers_are_checked(name: str, raw: str, urls: bool) -> None:
    with pytest.raises(ConfigError, match=f"{name} has .* not host:port") as caught:
        parse_addresses(name, raw, urls=urls)
    assert "secret" not in caught.value.message
    assert parse_addresses(name, " a:1 , [::1]:3306,", urls=urls) == ("a:1", "[::1]:3306")
    assert parse_addresses("LLM_PROXY_MYSQL_REPLICA_URLS", "mysql://u@r:3306/x", urls=True) == ("mysql://u@r:3306/x",)
    assert parse_addresses(name, None, urls=urls) == ()


def test_a_lone_server_has_no_topology(mysql_url) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.connect() as connection:
        facts = topology(connection)
    assert facts.galera is None and facts.channels == () and facts.read_only == ()
    with engine.connect() as connection:  # MySQL 8 has no MariaDB GTID positions: read as none
        assert mysql_pacing._variable(connection, "no_such_variable_here") == ""
    engine.dispose()
    assert mysql.describe_topology(Settings(driver="mysql", database_url=mysql_url)) is None


def test_backoff_is_bounded() -> None:
    waits = [mysql_pacing.backoff(n) for n in range(1, 20)]
    assert all(0 < w <= mysql_pacing.BACKOFF_MAX_S for w in waits)
    assert waits[0] <= mysql_pacing.BACKOFF_FIRST_S


def test_a_batch_that_keeps_losing_is_given_up(mysql_url) -> None:
    """1213 is retried MAX_CONFLICT_RETRIES times, then raised; other errors at once."""
    engine = sa.create_engine(mysql_url)
    reports: list[str] = []
    calls = []

    def conflict() -> int:
        calls.append(1)
        raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")

    with engine.connect() as connection:
        pacer = mysql_pacing.Pacer(connection, lambda kind, detail: reports.append(detail), sleep=lambda s: None)
        with pytest.raises(pymysql.err.OperationalError):
            pacer.run_batch(conflict)
        assert len(calls) == mysql_pacing.MAX_CONFLICT_RETRIES + 1
        assert reports[-1] == f"retrying batch after certification conflict ({mysql_pacing.MAX_CONFLICT_RETRIES})"
        calls.clear()
        with pytest.raises(ZeroDivisionError):
            pacer.run_batch(lambda: 1 // 0)
        answers = iter([conflict, lambda: 7])
        assert pacer.run_batch(lambda: next(answers)()) == 7
    engine.dispose()


def test_galera_flow_control_is_watched(galera, monkeypatch) -> None:  # noqa: F811
    """On the cluster, every node is watched; a receive queue above the limit or flow control
    time that grew makes the next batch wait (forced here: the real cluster is idle)."""
    engine = sa.create_engine(galera.urls[0])
    reports: list[str] = []
    with engine.connect() as connection:
        with mysql_pacing.Pacer.open(connection, lambda kind, detail: reports.append(detail)) as pacer:
            assert sorted(node.address for node in pacer._nodes) == sorted(
                f"{u.host}:{u.port}" for u in galera.urls)
            assert pacer.behind() is None and pacer.wait() == 0.0
            monkeypatch.setattr(mysql_pacing, "GALERA_QUEUE_LIMIT", -1)
            assert "Galera receive queue 0 on" in str(pacer.behind())
            monkeypatch.setattr(mysql_pacing, "GALERA_QUEUE_LIMIT", 8)
            pacer._paused_ns = {address: -1 for address in pacer._paused_ns}
            assert "Galera flow control paused the cluster" in str(pacer.behind())
        with mysql_pacing.Pacer.open(connection, lambda kind, detail: None, max_lag=0) as off:
            assert off._nodes == [] and off.wait() == 0.0
    engine.dispose()
    assert mysql_pacing.describe(None) == {"conflicts": 0, "paused_s": 0.0}
