"""PgBouncer in front of PostgreSQL (issue 19): a transaction pool is detected and refused
without a direct URL; with ``LLM_PROXY_DIRECT_URL`` every change runs on a session of its own;
a session pool works as it is.  Real PgBouncer pools (``.ci/topology/postgres.sh``), the
service's traffic on the same pool, 10 rounds where the issue asks for them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.postgresql import pooler as pg_pooler
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError
from llm_proxy_db.safety import backup
from llm_proxy_db.safety.topology import owned_session_settings
from tests.pg_topology_helpers import (
    advisory_locks,
    cli_env,
    leftovers_on_pool,
    service_on_pool,
    start_cli,
)
from tests.service_emulator import start_service
from tests.topology import PooledDatabase, libpq

pytestmark = pytest.mark.postgresql
ROUNDS = 10
runner = CliRunner()


def _probe(url) -> pg_pooler.PoolerProbe:  # type: ignore[no-untyped-def]
    return pg_pooler.probe(libpq(url), url.port)


# -- settings ---------------------------------------------------------------------------------


def test_the_direct_url_comes_from_the_option_or_the_environment() -> None:
    env = {"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://app@pooler:6432/llm",
           "LLM_PROXY_DIRECT_URL": "postgres://app:s3cret@primary:5432/llm"}
    settings = resolve_settings(env=env)
    assert settings.sqlalchemy_url().host == "pooler"
    changes = settings.for_changes()
    assert changes.sqlalchemy_url().host == "primary" and changes.direct_url is None
    assert "s3cret" not in changes.describe()
    option = resolve_settings(env=env, direct_url="postgres://app@other:5432/llm")
    assert option.for_changes().sqlalchemy_url().host == "other"
    assert resolve_settings(env={k: v for k, v in env.items() if "DIRECT" not in k}).for_changes().direct_url is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LLM_PROXY_DIRECT_URL": "postgres://a@h/db"}, "for a server database"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://a@h/db",
          "LLM_PROXY_DIRECT_URL": "mysql://a:pw@h/db"}, "is not a postgres URL"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://a@h/db",
          "LLM_PROXY_DIRECT_URL": "postgres://a:pw@h"}, "LLM_PROXY_DIRECT_URL: database URL"),
    ],
)
def test_a_direct_url_that_cannot_be_used_is_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(env=env)
    assert expected in caught.value.message and "pw" not in caught.value.message


# -- detection --------------------------------------------------------------------------------


def test_detection_on_an_idle_pool(pooled_database: PooledDatabase) -> None:
    """10 probes each: the transaction pool is always found, the session pool and the direct
    connection never; the probe leaves nothing on the pool's sessions."""
    for _ in range(ROUNDS):
        found = _probe(pooled_database.transaction)
        assert found.transaction_pooled, found
        assert found.forwarded  # PgBouncer's port is not the server's
        assert not _probe(pooled_database.session).transaction_pooled
        direct = _probe(pooled_database.direct)
        assert not direct.transaction_pooled and not direct.forwarded
    assert leftovers_on_pool(pooled_database.transaction, pooled_database.direct) == []


def test_detection_on_a_busy_pool(pooled_database: PooledDatabase) -> None:
    """With other clients hammering the pools: still found on every probe, and never a false alarm."""
    with service_on_pool(pooled_database.transaction, readers=8) as watch:
        found = [_probe(pooled_database.transaction) for _ in range(ROUNDS)]
    assert all(probe.transaction_pooled for probe in found), found
    assert watch.queries > 100 and watch.errors == []
    with service_on_pool(pooled_database.session, readers=2) as watch:  # 5 server sessions at most
        found = [_probe(pooled_database.session) for _ in range(ROUNDS)]
    assert not any(probe.transaction_pooled for probe in found), found
    assert watch.errors == []


# -- refusal without a direct URL ------------------------------------------------------------


def _schema(direct) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    with psycopg.connect(libpq(direct), autocommit=True) as connection:
        return connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall() + connection.execute(
            "SELECT 'version', version_num, '' FROM alembic_version"
        ).fetchall()


def test_without_a_direct_url_every_writing_command_refuses_through_a_transaction_pool(
    pooled_database: PooledDatabase, tmp_path: Path
) -> None:
    """10 rounds, service traffic on the pool: exit 2 naming the pooler and the variable, nothing
    changed, nothing left on the pool."""
    direct_settings = Settings(driver="postgres", database_url=pooled_database.direct)
    commands.upgrade(direct_settings, "0004")
    dump = backup.backup(direct_settings, tmp_path / "before.dump")
    before = _schema(pooled_database.direct)
    target = ["--db-driver", "postgres", "--database-url", libpq(pooled_database.transaction)]
    writing = [
        ["setup"], ["migrate", "up"], ["migrate", "down", "--to", "0003"], ["migrate", "down", "--steps", "1"],
        ["migrate", "adopt"], ["db", "restore", str(dump), "--force"], ["migrate", "rehearse"],
        ["db", "backup", "--out", str(tmp_path / "never.dump")],
    ]
    with service_on_pool(pooled_database.transaction, head="0004") as watch:  # 0004 stays
        for _ in range(ROUNDS):
            for args in writing:
                result = runner.invoke(app, [*target, *args], env={"LLM_PROXY_DIRECT_URL": ""})
                assert result.exit_code == 2, (args, result.output)
                assert "transaction-pooling proxy" in result.output and "LLM_PROXY_DIRECT_URL" in result.output
                assert "nothing was changed" in result.output
    assert watch.errors == [] and watch.granted_mid_change == []
    assert _schema(pooled_database.direct) == before
    assert not (tmp_path / "never.dump").exists()
    assert leftovers_on_pool(pooled_database.transaction, pooled_database.direct) == []
    # Reads keep working through the pool.
    status = runner.invoke(app, [*target, "migrate", "status"], env={"LLM_PROXY_DIRECT_URL": ""})
    assert status.exit_code == 0 and "0004" in status.output


def test_owned_session_settings_prefer_the_direct_url(pooled_database: PooledDatabase) -> None:
    settings = pooled_database.settings(pooled_database.transaction, pooled_database.direct)
    assert owned_session_settings(settings).sqlalchemy_url().port == pooled_database.direct.port
    session = pooled_database.settings(pooled_database.session)
    assert owned_session_settings(session) is session


# -- with a direct URL, and through a session pool --------------------------------------------


def _applied_twice(direct) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with psycopg.connect(libpq(direct), autocommit=True) as connection:
        return connection.execute(
            "SELECT 'run log', revision, count(*) FROM llm_proxy_run_log "
            "WHERE action = 'upgrade' AND outcome = 'success' GROUP BY revision HAVING count(*) > 1 "
            "UNION ALL SELECT 'goose', version_id::text, count(*) FROM goose_db_version "
            "GROUP BY version_id HAVING count(*) > 1"
        ).fetchall()


def _migrated_revisions(direct) -> list[str]:  # type: ignore[no-untyped-def]
    with psycopg.connect(libpq(direct), autocommit=True) as connection:
        return [row[0] for row in connection.execute(
            "SELECT revision FROM llm_proxy_run_log WHERE action = 'upgrade' AND outcome = 'success' ORDER BY id"
        )]


def _two_setups_at_once(env: dict[str, str]) -> list[tuple[int, str]]:
    processes = [start_cli(["setup"], env) for _ in range(2)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        results.append((process.returncode, out + err))
    return results


def test_two_setups_at_once_with_a_direct_url_behind_a_transaction_pool(
    postgres_database_factory, pooled_database: PooledDatabase  # type: ignore[no-untyped-def]
) -> None:
    """10 rounds, each on a new database, the service's traffic and start-up lock on the pool:
    both exit 0, every revision applied once, the service's lock never granted mid-change, and
    nothing of ours left on the pool's server sessions."""
    for round_number in range(ROUNDS):
        database = pooled_database if round_number == 0 else _pooled(postgres_database_factory, pooled_database)
        env = cli_env(database.transaction, database.direct)
        with service_on_pool(database.transaction) as watch:
            results = _two_setups_at_once(env)
        assert [code for code, _ in results] == [0, 0], results
        assert _migrated_revisions(database.direct) == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
        assert _applied_twice(database.direct) == []
        assert watch.errors == [] and watch.granted_mid_change == [], watch
        assert leftovers_on_pool(database.transaction, database.direct) == []
    started = start_service(Settings(driver="postgres", database_url=pooled_database.direct))
    assert started.changed_nothing


def _pooled(factory, template: PooledDatabase) -> PooledDatabase:  # type: ignore[no-untyped-def]
    direct = factory()
    return PooledDatabase(
        direct, template.transaction.set(database=direct.database), template.session.set(database=direct.database)
    )


def test_two_setups_at_once_through_a_session_pool(
    postgres_database_factory, pooled_database: PooledDatabase  # type: ignore[no-untyped-def]
) -> None:
    """Session pooling needs no direct URL: 10 rounds of two setups at once, both exit 0, every
    revision once, no lock left once they are gone (PgBouncer's DISCARD ALL and our unlock)."""
    for round_number in range(ROUNDS):
        database = pooled_database if round_number == 0 else _pooled(postgres_database_factory, pooled_database)
        results = _two_setups_at_once(cli_env(database.session))
        assert [code for code, _ in results] == [0, 0], results
        assert all("goose_db_version" not in output for _, output in results)
        assert _migrated_revisions(database.direct) == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
        assert _applied_twice(database.direct) == []
        assert advisory_locks(database.direct) == []
        assert leftovers_on_pool(database.session, database.direct) == []


def test_the_loser_of_a_race_leaves_a_read_of_a_moving_schema_to_the_locked_check(postgres_url) -> None:  # type: ignore[no-untyped-def]
    """``relation "goose_db_version" does not exist`` for the loser of two setups (session pool,
    2/20 rounds in the issue): the unlocked precheck read a schema another migrator was changing.
    Such a read error now leaves the decision to the check under the lock."""
    import sqlalchemy as sa

    from llm_proxy_db.adoption.adopt import GuardedAdoption
    from llm_proxy_db.database import connect
    from tests import legacy

    settings = Settings(driver="postgres", database_url=postgres_url)
    legacy.create(settings, next(shape for shape in legacy.postgresql_shapes() if shape.name == "goose-6"))
    dropped: list[str] = []

    def drop_it_first(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if "FROM goose_db_version" in statement and not dropped:
            with psycopg.connect(libpq(postgres_url), autocommit=True) as other:  # the other migrator
                other.execute("DROP TABLE goose_db_version")
            dropped.append(statement)

    runner_ = GuardedAdoption()
    with connect(settings, foreign_keys=False) as connection:
        sa.event.listen(connection, "before_cursor_execute", drop_it_first)
        runner_.precheck(connection, "0007")  # no error: decided under the lock
        sa.event.remove(connection, "before_cursor_execute", drop_it_first)
        assert dropped and runner_.planned is None and not runner_.checked
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1  # the connection is usable


def test_an_unlock_that_finds_no_lock_of_ours_drops_the_connection(postgres_url) -> None:  # type: ignore[no-untyped-def]
    """``pg_advisory_unlock`` false: this is not the session that took the lock (a pooler in
    between); the connection is dropped so that nothing of ours stays on it."""
    from llm_proxy_db.database import connect
    from llm_proxy_db.dialects.postgresql import SERVICE_LOCK_KEY, migration_lock

    settings = Settings(driver="postgres", database_url=postgres_url)
    with connect(settings) as connection:
        with migration_lock(settings, connection, 5.0, None):
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SERVICE_LOCK_KEY})")  # "moved away"
            connection.commit()
        assert connection.invalidated
    assert advisory_locks(postgres_url) == []  # ours went with the dropped session


@pytest.mark.parametrize("direct", [False, True])
def test_an_unreachable_server_is_exit_3_before_anything(direct: bool) -> None:
    """The probes (pooler without a direct URL, standby with one) fail like any connection."""
    from llm_proxy_db.errors import DatabaseConnectionError

    url = "postgresql://app:s3cret@127.0.0.1:1/llm"
    settings = resolve_settings(env={"DB_DRIVER": "postgres", "DATABASE_URL": url,
                                     **({"LLM_PROXY_DIRECT_URL": url} if direct else {})})
    with pytest.raises(DatabaseConnectionError) as caught:
        commands.upgrade(settings)
    assert caught.value.exit_code == 3 and "s3cret" not in caught.value.message


def test_the_direct_url_can_come_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "direct-url"
    secret.write_text("postgres://app:s3cret@primary:5432/llm\n")
    secret.chmod(0o600)
    env = {"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://app@pooler:6432/llm",
           "LLM_PROXY_DIRECT_URL_FILE": str(secret)}
    assert resolve_settings(env=env).for_changes().sqlalchemy_url().host == "primary"
    with pytest.raises(ConfigError):
        resolve_settings(env={**env, "LLM_PROXY_DIRECT_URL": "postgres://app@other/llm"})
