"""Pointed at a read-only standby (issue 19; issue 21 item 17): every writing command exits 3
naming the standby, before any lock or change; reads keep working; no hint blames privileges,
CREATEDB or goose's columns for a server that only reads.  The real streaming replica of
``.ci/topology/postgres.sh``; the read-only session case on the shared server."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import postgresql
from llm_proxy_db.errors import ReadOnlyDatabaseError
from llm_proxy_db.failures import translate
from llm_proxy_db.safety import backup
from tests import legacy
from tests.topology import ReplicatedDatabase, libpq

pytestmark = pytest.mark.postgresql
runner = CliRunner()
WRONG_CAUSES = ("privilege", "CREATEDB", "goose's own columns", "GRANT")


def _writing_commands(dump: Path) -> list[list[str]]:
    return [
        ["setup"], ["migrate", "up"], ["migrate", "up", "--to", "0005"], ["migrate", "down", "--to", "0003"],
        ["migrate", "down", "--steps", "1"], ["migrate", "adopt"],
        ["db", "restore", str(dump), "--force"], ["migrate", "rehearse"],
    ]


def _invoke(url: sa.engine.URL, args: list[str], direct: sa.engine.URL | None = None):  # type: ignore[no-untyped-def]
    options = ["--db-driver", "postgres", "--database-url", libpq(url)]
    if direct is not None:
        options += ["--direct-url", libpq(direct)]
    return runner.invoke(app, [*options, *args], env={"LLM_PROXY_DIRECT_URL": ""})


def _assert_refused_as_standby(result, where: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 3, result.output
    assert "read-only standby" in result.output and where in result.output, result.output
    assert "point at the primary" in result.output
    assert not any(cause in result.output for cause in WRONG_CAUSES), result.output


def test_every_writing_command_on_the_standby_exits_3_and_reads_work(
    replicated_database: ReplicatedDatabase, tmp_path: Path
) -> None:
    primary = Settings(driver="postgres", database_url=replicated_database.primary)
    commands.upgrade(primary, "0004")
    dump = backup.backup(primary, tmp_path / "primary.dump")
    replicated_database.wait_replayed()
    where = f"127.0.0.1:{replicated_database.replica.port}"
    for args in _writing_commands(dump):
        _assert_refused_as_standby(_invoke(replicated_database.replica, args), where)
    status = _invoke(replicated_database.replica, ["migrate", "status"])
    assert status.exit_code == 0 and "0004" in status.output
    saved = _invoke(replicated_database.replica, ["db", "backup", "--out", str(tmp_path / "replica.dump")])
    assert saved.exit_code == 0, saved.output
    assert commands.status(primary).current_revision == "0004"  # nothing changed anywhere


def test_a_standby_at_head_is_refused_by_setup_too(replicated_database: ReplicatedDatabase) -> None:
    """The fast answer at head steps aside for a standby: a service cannot start on it."""
    commands.upgrade(Settings(driver="postgres", database_url=replicated_database.primary))
    replicated_database.wait_replayed()
    _assert_refused_as_standby(_invoke(replicated_database.replica, ["setup"]), "55433")
    status = _invoke(replicated_database.replica, ["migrate", "status"])
    assert status.exit_code == 0 and "0007" in status.output


def test_a_direct_url_at_the_standby_is_refused(replicated_database: ReplicatedDatabase) -> None:
    result = _invoke(replicated_database.primary, ["setup"], direct=replicated_database.replica)
    _assert_refused_as_standby(result, "55433")
    primary = Settings(driver="postgres", database_url=replicated_database.primary)
    assert commands.status(primary).current_revision is None


def test_the_library_refuses_the_standby(replicated_database: ReplicatedDatabase) -> None:
    replica = Settings(driver="postgres", database_url=replicated_database.replica)
    with pytest.raises(ReadOnlyDatabaseError) as caught:
        commands.setup(replica)
    assert caught.value.exit_code == 3 and "read-only standby" in caught.value.message


def test_scratch_databases_on_a_standby_blame_the_standby(replicated_database: ReplicatedDatabase) -> None:
    with pytest.raises(ReadOnlyDatabaseError) as caught, postgresql.scratch_database(replicated_database.replica):
        pass
    assert "primary" in (caught.value.hint or "") and "CREATEDB" not in (caught.value.hint or "")
    replica = Settings(driver="postgres", database_url=replicated_database.replica)
    with connect(replica) as connection, pytest.raises(ReadOnlyDatabaseError) as scratch_caught, (
        postgresql.scratch_connection(connection)
    ):
        pass
    assert "privilege" not in (scratch_caught.value.hint or "")


def _read_only_database(postgres_database_factory) -> Settings:  # type: ignore[no-untyped-def]
    url = postgres_database_factory()
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on')
    return Settings(driver="postgres", database_url=url)


def test_a_read_only_session_is_refused_with_its_cause(postgres_database_factory) -> None:  # type: ignore[no-untyped-def]
    settings = _read_only_database(postgres_database_factory)
    result = _invoke(settings.sqlalchemy_url(), ["setup"])
    assert result.exit_code == 3, result.output
    assert "default_transaction_read_only is on" in result.output
    assert not any(cause in result.output for cause in WRONG_CAUSES)


def test_a_write_refused_as_read_only_is_translated_to_exit_3(postgres_url) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(driver="postgres", database_url=postgres_url)
    with connect(settings) as connection:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        with pytest.raises(sa.exc.DBAPIError) as caught:
            connection.exec_driver_sql("CREATE TABLE t (x int)")
    error = translate(caught.value)
    assert isinstance(error, ReadOnlyDatabaseError) and error.exit_code == 3
    assert not any(cause in (error.hint or "") for cause in WRONG_CAUSES)


def test_adoption_refused_by_a_read_only_session_names_it(postgres_url) -> None:  # type: ignore[no-untyped-def]
    """The stamp's write refused as read-only: not a hint about privileges or goose's columns."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    shape = next(shape for shape in legacy.postgresql_shapes() if shape.name == "goose-1")
    legacy.create(settings, shape)
    with connect(settings, foreign_keys=False) as connection:
        connection.exec_driver_sql("SET default_transaction_read_only = on")
        connection.commit()
        with pytest.raises(ReadOnlyDatabaseError) as caught:
            adoption.adopt(connection, "0007")
    assert "only reads" in caught.value.message and "primary" in (caught.value.hint or "")
