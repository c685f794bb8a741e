"""Adoption sees every kind of relation named like the service's tables (issue 21, item 5).

A view (or a materialized view, a foreign or partitioned table, a sequence, a type) named
``audit_events`` is not the service's table: adoption must refuse (exit 6) with a readable
difference and change nothing, never take the database for L0 (or empty), stamp it and fail
in the next revision's ``CREATE TABLE``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import SchemaMismatchError
from llm_proxy_db.migration.version_table import has_version_table

VIEW = "CREATE VIEW audit_events AS SELECT 'x' AS id"
POSTGRES_KINDS = {
    "materialized view": ["CREATE MATERIALIZED VIEW audit_events AS SELECT 'x' AS id"],
    "partitioned table": ["CREATE TABLE audit_events (id text) PARTITION BY LIST (id)"],
    "foreign table": [
        "CREATE EXTENSION IF NOT EXISTS file_fdw",
        "CREATE SERVER ops_files FOREIGN DATA WRAPPER file_fdw",
        "CREATE FOREIGN TABLE audit_events (id text) SERVER ops_files OPTIONS (filename '/dev/null')",
    ],
    "sequence": ["CREATE SEQUENCE audit_events"],
    "type": ["CREATE TYPE audit_events AS ENUM ('x')"],
}


def _at_0001_unversioned(settings: Settings) -> None:
    """L0's shape (revision 0001's schema), without alembic_version: how the service left it."""
    commands.upgrade(settings, "0001", no_backup=True)
    with connect(settings) as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
        connection.commit()


def _refused(settings: Settings, expected: str) -> SchemaMismatchError:
    with pytest.raises(SchemaMismatchError) as raised:
        commands.setup(settings, no_backup=True)
    error = raised.value
    assert error.exit_code == 6
    assert any(expected in line for line in error.differences), error.differences
    with connect(settings, create=False) as connection:
        assert not has_version_table(connection)
    return error


def test_a_view_named_like_our_table_beside_l0_is_refused(settings: Settings, dialect: str) -> None:
    """The field case: L0's tables plus a view audit_events (SQLite, PostgreSQL, MySQL)."""
    if dialect == "mysql":
        pytest.skip("no L0 on MySQL (the service reached MySQL at goose 1)")
    _at_0001_unversioned(settings)
    with connect(settings) as connection:
        assert commands.adopt(settings, dry_run=True).plan.stamp == "0001"  # L0 as it is
    with connect(settings) as connection:
        connection.exec_driver_sql(VIEW)
        connection.commit()
    _refused(settings, "audit_events is a view, not a table")


def test_a_lone_view_named_like_our_table_is_not_an_empty_database(settings: Settings) -> None:
    with connect(settings) as connection:
        connection.exec_driver_sql(VIEW)
        connection.commit()
    _refused(settings, "audit_events is a view, not a table")


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
@pytest.mark.parametrize("kind", sorted(POSTGRES_KINDS))
def test_every_postgres_relation_kind_is_seen(settings: Settings, kind: str) -> None:
    with connect(settings) as connection:
        for statement in POSTGRES_KINDS[kind]:
            connection.exec_driver_sql(statement)
        connection.commit()
    _refused(settings, f"audit_events is a {kind}, not a table")


def test_the_dry_run_says_it_too(settings: Settings) -> None:
    with connect(settings) as connection:
        connection.exec_driver_sql(VIEW)
        connection.commit()
    with pytest.raises(SchemaMismatchError) as raised:
        commands.adopt(settings, dry_run=True)
    assert "audit_events is a view, not a table" in str(raised.value.differences)


def test_a_sequence_named_like_one_of_the_service_indexes_is_seen(settings: Settings, dialect: str) -> None:
    """A relation of another kind under an index's name would make the revision creating that
    index fail; L0's shape plus such a sequence (a table on MySQL and SQLite) is refused."""
    if dialect == "mysql":
        pytest.skip("no L0 on MySQL (the service reached MySQL at goose 1)")
    _at_0001_unversioned(settings)
    blocker = (
        "CREATE SEQUENCE idx_audit_outcome" if dialect == "postgresql" else "CREATE TABLE idx_audit_outcome (a int)"
    )
    with connect(settings) as connection:
        connection.exec_driver_sql(blocker)
        connection.commit()
    kind = "sequence" if dialect == "postgresql" else "table"
    _refused(settings, f"idx_audit_outcome is a {kind}, under the name of one of the service's indexes")


# Issue 21, hostile review F3: the tables a run reads or creates besides the service's own
# (the version table, goose's, the run log, the adoption record) were not looked at: a
# PostgreSQL composite type goose_db_version let 0001-0002 run, then 0003 failed part-way.
BOOKKEEPING = ("alembic_version", "goose_db_version", "llm_proxy_run_log", "llm_proxy_adoption")
SERVICE_AND_BOOKKEEPING = ("projects", "tokens", "audit_events", *BOOKKEEPING)


def _untouched(settings: Settings) -> None:
    """Nothing was created: none of the service's tables, no version table."""
    with connect(settings, create=False) as connection:
        names = set(sa.inspect(connection).get_table_names())
    assert not names & {"projects", "tokens", "audit_events", "alembic_version"}, names


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
@pytest.mark.parametrize("name", SERVICE_AND_BOOKKEEPING)
def test_a_composite_type_under_any_table_name_is_refused_before_anything_runs(settings: Settings, name: str) -> None:
    with connect(settings) as connection:
        connection.exec_driver_sql(f"CREATE TYPE {name} AS (a int)")
        connection.commit()
    with pytest.raises(SchemaMismatchError) as raised:
        commands.setup(settings, no_backup=True)
    assert raised.value.exit_code == 6
    assert f"{name} is a composite type, not a table" in str(raised.value.differences), raised.value
    _untouched(settings)


@pytest.mark.parametrize("name", BOOKKEEPING)
def test_a_view_under_a_bookkeeping_table_name_is_refused(settings: Settings, name: str) -> None:
    """Every dialect: a view (a table's namespace on all three) named like a bookkeeping table is
    one clear refusal for setup, status and adopt --dry-run, never an unexpected error or a
    revision failing part-way."""
    with connect(settings) as connection:
        connection.exec_driver_sql(f"CREATE VIEW {name} AS SELECT 1 AS a")
        connection.commit()
    for call in (
        lambda: commands.setup(settings, no_backup=True),
        lambda: commands.status(settings),
        lambda: commands.adopt(settings, dry_run=True),
    ):
        with pytest.raises(SchemaMismatchError) as raised:
            call()
        assert raised.value.message.startswith(f"{name} is a view, not a table"), raised.value.message
        assert "rename or drop the view" in str(raised.value.hint)
    _untouched(settings)



def test_a_sqlite_trigger_named_like_a_table_is_no_clash(tmp_path) -> None:
    """SQLite keeps trigger names apart from table names: an operator's trigger named
    ``alembic_version`` stops no ``CREATE TABLE alembic_version``, so it is no reason to refuse."""
    settings = Settings(driver="sqlite", database_path=tmp_path / "llm-proxy.db")
    _at_0001_unversioned(settings)
    with connect(settings) as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER alembic_version AFTER UPDATE ON projects BEGIN SELECT 1; END"
        )
        connection.commit()
    commands.setup(settings, no_backup=True)
    with connect(settings, create=False) as connection:
        kinds = sorted(
            connection.exec_driver_sql("SELECT type FROM sqlite_master WHERE name = 'alembic_version'").scalars()
        )
    assert kinds == ["table", "trigger"]
