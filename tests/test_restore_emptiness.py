"""A server restore without --force refuses a database holding anything at all (issue 21, item 4).

A database holding only a materialized view, a sequence, a routine, a type or a domain (or,
on MySQL, only a routine or an event) is not empty: the load would drop or clash with those
objects, so without ``--force`` the restore must refuse (exit 8) and leave them, without a
safety dump; the emptiness check sees every kind of object of the schema.  SQLite never
refuses (it keeps a safety copy of any file holding anything: ``needs_backup`` counts every
``sqlite_master`` entry, views and triggers included; tested in test_backup.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import server_dialect_for
from llm_proxy_db.safety import backup
from tests.safety_helpers import server_database_at_head, skip_without_pg_client
from tests.test_cli_safety import cli

POSTGRES_ONLY = {
    "materialized view": ["CREATE MATERIALIZED VIEW ops_matview AS SELECT 1 AS one"],
    "sequence": ["CREATE SEQUENCE ops_counter"],
    "function": ["CREATE FUNCTION ops_helper(x int) RETURNS int LANGUAGE sql AS 'SELECT x'"],
    "procedure": ["CREATE PROCEDURE ops_proc() LANGUAGE sql AS 'SELECT 1'"],
    "aggregate": ["CREATE AGGREGATE ops_sum(int) (SFUNC = int4pl, STYPE = int)"],
    "enum type": ["CREATE TYPE ops_mood AS ENUM ('ok', 'sad')"],
    "composite type": ["CREATE TYPE ops_pair AS (a int, b int)"],
    "domain": ["CREATE DOMAIN ops_positive AS int CHECK (VALUE > 0)"],
    "collation": ["CREATE COLLATION ops_c (locale = 'C')"],
    "text search configuration": ["CREATE TEXT SEARCH CONFIGURATION ops_ts (COPY = simple)"],
    "extension": ["CREATE EXTENSION citext"],
}
MYSQL_ONLY = {
    "view": ["CREATE VIEW ops_view AS SELECT 1 AS one"],
    "function": ["CREATE FUNCTION ops_helper(x INT) RETURNS INT DETERMINISTIC RETURN x"],
    "procedure": ["CREATE PROCEDURE ops_proc() SELECT 1"],
    "event": ["CREATE EVENT ops_tick ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1"],
}
CASES = [
    *(pytest.param("postgresql", kind, ddl, marks=pytest.mark.postgresql, id=f"postgresql-{kind}")
      for kind, ddl in POSTGRES_ONLY.items()),
    *(pytest.param("mysql", kind, ddl, marks=pytest.mark.mysql, id=f"mysql-{kind}")
      for kind, ddl in MYSQL_ONLY.items()),
]


@pytest.mark.parametrize(("dialect", "kind", "ddl"), CASES)
def test_a_database_holding_only_other_objects_is_not_empty(
    settings: Settings, make_settings, kind: str, ddl: list[str], tmp_path: Path
) -> None:
    skip_without_pg_client(settings)
    source = server_database_at_head(settings, projects=2, tokens_each=2, events=3)
    dump = backup.backup(source, tmp_path / "source")
    target = make_settings()
    with connect(target) as connection:
        for statement in ddl:
            connection.exec_driver_sql(statement)
        connection.commit()
        before = server_dialect_for(target).schema_objects(connection)
    assert before, f"{kind}: the check does not see it"

    result = cli(target, "db", "restore", str(dump), "--backup-dir", str(tmp_path / "safety"))

    assert result.exit_code == 8, result.output
    assert "is not empty" in result.output and "--force" in result.output
    with connect(target) as connection:
        assert server_dialect_for(target).schema_objects(connection) == before
    assert not (tmp_path / "safety").exists() or not list((tmp_path / "safety").iterdir())


@pytest.mark.parametrize(
    "dialect",
    [pytest.param("postgresql", marks=pytest.mark.postgresql), pytest.param("mysql", marks=pytest.mark.mysql)],
)
def test_an_empty_database_has_no_objects(settings: Settings) -> None:
    with connect(settings) as connection:
        assert server_dialect_for(settings).schema_objects(connection) == []


@pytest.mark.parametrize("ddl", [
    "CREATE VIEW ops_view AS SELECT 1 AS one",
    "CREATE TABLE t (a); CREATE TRIGGER ops_trigger AFTER INSERT ON t BEGIN SELECT 1; END",
])
def test_sqlite_keeps_a_safety_copy_of_a_file_holding_only_a_view(
    sqlite_settings: Settings, tmp_path: Path, ddl: str
) -> None:
    """SQLite never refuses: it copies aside whatever the file holds (every sqlite_master entry counts)."""
    import sqlite3

    from llm_proxy_db import commands

    source = Settings(driver="sqlite", database_path=tmp_path / "source.db")
    commands.upgrade(source, no_backup=True)
    taken = backup.backup(source, tmp_path / "source.bak")
    assert sqlite_settings.database_path is not None
    sqlite_settings.database_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(sqlite_settings.database_path)
    connection.executescript(ddl)
    connection.close()
    assert backup.needs_backup(sqlite_settings)
    result = backup.restore(sqlite_settings, taken, backup_dir=tmp_path / "safety", force=True)
    assert result.safety_copy is not None and result.safety_copy.exists()
