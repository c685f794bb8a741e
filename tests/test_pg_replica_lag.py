"""Replica lag bounded (issue 19): batched phases pause while a streaming replica lags more than
``LLM_PROXY_MAX_REPLICA_LAG``, show it, and resume when it catches up.  The lag is forced
deterministically on the real replica of ``.ci/topology/postgres.sh`` with
``pg_wal_replay_pause()`` and released with ``pg_wal_replay_resume()``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.parsing import env_settings
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.postgresql import replication as pg_replication
from llm_proxy_db.errors import ConfigError
from llm_proxy_db.events import ProgressEvent
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.replica_throttle import ReplicaThrottle, max_replica_lag
from tests.seed import seed
from tests.topology import ReplicatedDatabase, libpq

pytestmark = pytest.mark.postgresql


@contextmanager
def replay_paused(database: ReplicatedDatabase) -> Iterator[None]:
    """The replica receives WAL but does not replay it, until the block ends."""
    with psycopg.connect(libpq(database.replica), autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")


def _write_wal(database: ReplicatedDatabase) -> None:
    with psycopg.connect(libpq(database.primary), autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS filler (x text)")
        primary.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)")


def test_the_setting_is_validated() -> None:
    assert max_replica_lag({}) == 1.0
    assert max_replica_lag({"LLM_PROXY_MAX_REPLICA_LAG": "0"}) == 0.0
    assert env_settings({"LLM_PROXY_MAX_REPLICA_LAG": "2.5"}).max_replica_lag == 2.5
    for bad in ("-1", "nan", "abc", "1e9"):
        with pytest.raises(ConfigError) as caught:
            env_settings({"LLM_PROXY_MAX_REPLICA_LAG": bad})
        assert "LLM_PROXY_MAX_REPLICA_LAG" in caught.value.message


def test_the_lag_read_on_the_primary_grows_while_replay_stands_still(replicated_database: ReplicatedDatabase) -> None:
    primary = Settings(driver="postgres", database_url=replicated_database.primary)
    clock = pg_replication.LagClock()
    with connect(primary) as connection:
        connection.exec_driver_sql("SELECT 1")
        connection.commit()
        replicated_database.wait_replayed()
        caught_up = clock.read(connection)
        assert caught_up.replicas and caught_up.worst is not None and caught_up.worst.seconds < 1.0
        with replay_paused(replicated_database):
            _write_wal(replicated_database)
            first = clock.read(connection).worst
            time.sleep(1.0)
            _write_wal(replicated_database)
            later = clock.read(connection).worst
            assert first is not None and later is not None
            assert later.behind_bytes > 2_000_000 and later.seconds >= 0.9 + first.seconds - 0.05
        replicated_database.wait_replayed()
        after = clock.read(connection).worst
        assert after is not None and after.seconds == 0.0 and after.behind_bytes == 0
        assert pg_replication.wal_position(connection) is not None
    replica = Settings(driver="postgres", database_url=replicated_database.replica)
    with connect(replica) as connection:
        assert pg_replication.wal_position(connection) is None  # a standby has no WAL of its own


def _tokens_at_0004(database: ReplicatedDatabase, tokens: int) -> Settings:
    primary = Settings(driver="postgres", database_url=database.primary)
    commands.upgrade(primary, "0004")
    with connect(primary) as connection:
        seed(connection, tokens=tokens, events=10)
        connection.commit()
    database.wait_replayed()
    return primary


def _null_ids(primary: Settings) -> int:
    with connect(primary) as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE id IS NULL").scalar_one())


def _lagging_beyond(database: ReplicatedDatabase, primary: Settings, seconds: float) -> None:
    """With replay paused: WAL written and waited for until the replica lags ``seconds``."""
    clock = pg_replication.LagClock()
    deadline = time.monotonic() + 30
    with connect(primary) as connection:
        while True:
            _write_wal(database)
            worst = clock.read(connection).worst
            if worst is not None and worst.seconds >= seconds:
                return
            assert time.monotonic() < deadline, worst
            time.sleep(0.1)


def test_the_backfill_pauses_while_the_replica_lags_and_resumes(
    replicated_database: ReplicatedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0005's backfill on the primary with the replica's replay paused: it stops between two
    batches, says so, does not move while paused, and finishes once replay resumes."""
    primary = _tokens_at_0004(replicated_database, 40_000)
    monkeypatch.setenv("LLM_PROXY_MAX_REPLICA_LAG", "0.3")
    # Small batches: many of them, so the walk is still running when the lag shows (a resumed
    # walk skips filled pages fast and would otherwise finish within one lag reading).
    monkeypatch.setattr(pg_online, "BACKFILL_MAX_PAGES", 8)
    events: list[ProgressEvent] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            commands.upgrade(primary, "0005", progress=events.append)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            done.set()

    with replay_paused(replicated_database):
        _lagging_beyond(replicated_database, primary, 0.6)  # a quiet machine's walk would otherwise
        thread = threading.Thread(target=migrate)  # finish before the first lag reading (seen in CI)
        thread.start()
        deadline = time.monotonic() + 60
        while not any(e.kind == "throttle" and e.detail.startswith("paused") for e in events):
            assert time.monotonic() < deadline and not done.is_set(), [e.detail for e in events][-5:]
            time.sleep(0.05)
        left = _null_ids(primary)
        time.sleep(1.5)
        assert _null_ids(primary) == left > 0  # no batch ran while paused
        assert not done.is_set()
    thread.join(120)
    assert not failures, failures
    paused = [e.detail for e in events if e.kind == "throttle"]
    assert paused[0].startswith("paused: replica lag ") and "LLM_PROXY_MAX_REPLICA_LAG" in paused[0]
    assert any(detail.startswith("resumed: replica lag") for detail in paused)
    assert _null_ids(primary) == 0 and commands.status(primary).current_revision == "0005"


def test_no_throttle_when_switched_off_or_without_replicas(
    replicated_database: ReplicatedDatabase, postgres_url
) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []
    primary = Settings(driver="postgres", database_url=replicated_database.primary)
    with connect(primary) as connection, replay_paused(replicated_database):
        _write_wal(replicated_database)
        throttle = ReplicaThrottle(connection, lambda kind, detail: said.append(detail), limit=0)
        assert throttle.wait() == 0.0  # off: not even read
    shared = Settings(driver="postgres", database_url=postgres_url)  # a server without replicas
    with connect(shared) as connection:
        throttle = ReplicaThrottle(connection, lambda kind, detail: said.append(detail), limit=0.1)
        assert throttle.wait() == 0.0 and throttle.wait() == 0.0
    assert said == []


def test_a_role_that_cannot_see_the_replicas_is_told_once(replicated_database: ReplicatedDatabase) -> None:
    role = "llm_proxy_no_monitor"
    with psycopg.connect(libpq(replicated_database.primary), autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        settings = Settings(driver="postgres", database_url=replicated_database.primary.set(username=role))
        said: list[str] = []
        with connect(settings) as connection:
            throttle = ReplicaThrottle(connection, lambda kind, detail: said.append(detail), limit=0.1)
            throttle.wait()
            throttle._next_check = 0.0
            throttle.wait()
        assert len(said) == 1 and "pg_monitor" in said[0]
    finally:
        with psycopg.connect(libpq(replicated_database.primary), autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
