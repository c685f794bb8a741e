"""goose_db_version kept in step with alembic_version (llm_proxy_db.service.goose)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alembic import command
from llm_proxy_db import commands
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.service import goose

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pg(postgres_url) -> Settings:
    """An empty PostgreSQL database."""
    return Settings(driver="postgres", database_url=postgres_url)


def _rows(settings: Settings) -> list[tuple[int, bool]]:
    """goose's rows in id order; [] when there is no goose table."""
    with connect(settings) as connection:
        if not goose.has_goose_table(connection):
            return []
        rows = connection.exec_driver_sql(
            "SELECT version_id, is_applied FROM goose_db_version ORDER BY id"
        ).all()
    return [(int(v), bool(a)) for v, a in rows]


def _execute(settings: Settings, *statements: str) -> None:
    with connect(settings) as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
        connection.commit()


def test_the_mapping_is_data_per_dialect() -> None:
    """PostgreSQL: 0001, 0002 none, 0003 -> 1-2 ... 0007 -> 1-6; no goose on SQLite."""
    assert [goose.goose_version_at("postgresql", rev) for rev in ("0001", "0002", "0003", "0007")] == [0, 0, 2, 6]
    assert goose.goose_version_at("postgresql", None) == 0
    assert goose.goose_version_at("postgresql", "9001") is None
    assert goose.goose_version_at("sqlite", "0007") is None and not goose.runs_goose("sqlite")


def test_the_table_appears_with_the_first_revision_that_needs_it(pg) -> None:
    commands.upgrade(pg, "0002")
    with connect(pg) as connection:
        assert not goose.has_goose_table(connection)
    commands.upgrade(pg, "0003")
    assert _rows(pg) == [(0, True), (1, True), (2, True)]
    commands.upgrade(pg)
    assert _rows(pg) == [(v, True) for v in range(7)]


def test_downgrades_delete_the_versions_whose_effect_is_gone(pg) -> None:
    commands.upgrade(pg)
    commands.downgrade(pg, "0005")
    assert _rows(pg) == [(v, True) for v in range(5)]
    commands.downgrade(pg, "base")
    assert _rows(pg) == []  # only the seed row was left: the table the upgrade created is gone


def test_gaps_and_rolled_back_rows_are_rewritten_in_order(pg) -> None:
    """Older goose runners take the latest row's version: rows must be 1..N in id order."""
    commands.upgrade(pg, "0004")
    _execute(
        pg,
        "DELETE FROM goose_db_version WHERE version_id = 2",
        "INSERT INTO goose_db_version (version_id, is_applied) VALUES (2, TRUE), (3, FALSE)",
    )
    with connect(pg) as connection, connection.begin():
        assert goose.sync(connection, "0005") == [1, 2, 3, 4]
    assert _rows(pg) == [(v, True) for v in range(5)]


def test_a_revision_that_is_not_ours_leaves_goose_alone(pg) -> None:
    commands.upgrade(pg, "0004")
    with connect(pg) as connection, connection.begin():
        assert goose.sync(connection, "9001") is None
    assert _rows(pg) == [(v, True) for v in range(4)]


def test_plain_alembic_commands_keep_goose_in_step_too(pg) -> None:
    """The hook lives in the migration environment: ``alembic upgrade``/``downgrade`` use it."""
    with connect(pg, foreign_keys=False) as connection:
        command.upgrade(make_config(connection=connection), "head")
        connection.commit()
        command.downgrade(make_config(connection=connection), "0006")
        connection.commit()
    assert _rows(pg) == [(v, True) for v in range(6)]


def test_goose_is_written_in_the_revision_transaction(pg) -> None:
    """A goose table that refuses the write rolls the revision back with it."""
    commands.upgrade(pg, "0005")
    _execute(
        pg,
        "CREATE FUNCTION no_goose() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'read-only goose table'; END $$",
        "CREATE TRIGGER no_goose BEFORE INSERT ON goose_db_version "
        "FOR EACH ROW EXECUTE FUNCTION no_goose()",
    )
    with pytest.raises(MigrationError, match="0006 failed part-way") as raised:
        commands.upgrade(pg)
    assert "run again" in (raised.value.hint or "")
    with connect(pg) as connection:
        assert current_revision(connection) == "0005"
        columns = {c["name"] for c in sa.inspect(connection).get_columns("projects")}
    # The rename is committed on its own (goose file 5 would skip it); the version and goose
    # rows are one transaction: neither moved.
    assert "api_key" in columns and "openai_api_key" not in columns
    assert _rows(pg) == [(v, True) for v in range(5)]
    _execute(pg, "DROP TRIGGER no_goose ON goose_db_version")
    assert commands.upgrade(pg).after == "0007"
    assert _rows(pg) == [(v, True) for v in range(7)]


def test_offline_scripts_keep_goose_in_step_as_well(pg) -> None:
    """``migrate up --sql`` / ``down --sql`` scripts, run by psql as a DBA would, carry the
    same goose rows, idempotently (0005's online backfill commits per batch: psql, not one
    multi-statement query)."""
    import subprocess

    url = pg.database_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def psql(sql: str) -> None:
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=sql, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stderr

    psql(commands.upgrade_sql(pg, "0002"))
    with connect(pg) as connection:
        assert not goose.has_goose_table(connection)
    psql(commands.upgrade_sql(pg, "head", start="0002"))
    assert _rows(pg) == [(v, True) for v in range(7)]
    psql(commands.downgrade_sql(pg, "0002"))
    assert _rows(pg) == []
