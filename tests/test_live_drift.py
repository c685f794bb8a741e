"""``migrate drift``: a live database against its revision's schema, and two live databases
against each other (same dialect and across dialects), on SQLite, PostgreSQL and MySQL."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.adoption.live_drift import DRIFT, OPERATOR, REFERENCE_DRIFT, SERVICE
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import SchemaMismatchError
from tests.test_cli_safety import cli

# A changed type (tokens.max_requests INTEGER -> BIGINT) and nullability (projects.deactivated_at
# NOT NULL), in each dialect's own way; SQLite cannot ALTER a column, so its stored DDL is edited.
DAMAGE = {
    "sqlite": [
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET sql = replace(sql, 'max_requests INTEGER', 'max_requests BIGINT') "
        "WHERE name = 'tokens'",
        "UPDATE sqlite_master SET sql = replace(sql, 'deactivated_at DATETIME,', 'deactivated_at DATETIME NOT NULL,') "
        "WHERE name = 'projects'",
        "PRAGMA writable_schema = OFF",
    ],
    "postgresql": [
        "ALTER TABLE tokens ALTER COLUMN max_requests TYPE BIGINT",
        "ALTER TABLE projects ALTER COLUMN deactivated_at SET NOT NULL",
    ],
    "mysql": [
        "ALTER TABLE tokens MODIFY max_requests BIGINT NULL",
        "ALTER TABLE projects MODIFY deactivated_at DATETIME(6) NOT NULL",
    ],
}


def _run(settings: Settings, *statements: str) -> None:
    with connect(settings) as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
        connection.commit()


def _drop_index(settings: Settings, name: str, table: str) -> str:
    return f"DROP INDEX {name}" + (f" ON {table}" if settings.is_mysql else "")


def _found(report) -> dict[str, str]:
    return {item.difference.describe(): item.origin for item in report.items}


def test_at_its_revision_a_database_has_no_drift(settings: Settings) -> None:
    commands.upgrade(settings, "0004", no_backup=True)
    assert commands.drift(settings).items == []
    commands.upgrade(settings, no_backup=True)
    report = commands.drift(settings)
    assert not report.drift and report.items == [] and report.statements == []
    assert "alembic_version" in report.recognised and "llm_proxy_run_log" in report.recognised


def test_a_changed_column_a_missing_index_and_an_operators_index(settings: Settings, dialect: str) -> None:
    commands.upgrade(settings, no_backup=True)
    _run(
        settings,
        *DAMAGE[dialect],
        _drop_index(settings, "idx_tokens_expires_at", "tokens"),
        "CREATE INDEX ops_tokens_last_used ON tokens (last_used_at)",
    )
    report = commands.drift(settings)
    assert _found(report) == {
        "column tokens.max_requests: type bigint, expected integer": DRIFT,
        "column projects.deactivated_at: nullable NOT NULL, expected nullable": DRIFT,
        "missing index idx_tokens_expires_at on tokens": DRIFT,
        "extra index ops_tokens_last_used on tokens": OPERATOR,
    }
    assert report.drift
    assert "CREATE INDEX idx_tokens_expires_at ON tokens (expires_at);" in report.statements
    by_field = {item.difference.field: item.reconciliation for item in report.items if item.difference.field}
    if dialect_for(settings).BATCH_ALTER:
        assert by_field["type"].statements == () and "table rebuild" in (by_field["type"].note or "")
    else:
        assert any("max_requests" in sql and "INTEGER" in sql.upper() for sql in by_field["type"].statements)
        assert any("deactivated_at" in sql for sql in by_field["nullable"].statements)
        assert not by_field["type"].safe and by_field["nullable"].safe

    result = cli(settings, "migrate", "drift")
    assert result.exit_code == 9, result.output
    assert "DRIFT" in result.output and "operator addition" in result.output
    assert "CREATE INDEX idx_tokens_expires_at ON tokens (expires_at);" in result.output
    data = json.loads(cli(settings, "migrate", "drift", "--json").stdout)
    assert data["drift"] is True and len(data["differences"]) == 4


TRIGGER = {
    "sqlite": ["CREATE TRIGGER ops_touch AFTER UPDATE ON projects BEGIN SELECT 1; END"],
    "postgresql": [
        "CREATE FUNCTION ops_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        "CREATE TRIGGER ops_touch BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION ops_touch()",
    ],
    "mysql": ["CREATE TRIGGER ops_touch BEFORE UPDATE ON projects FOR EACH ROW SET NEW.name = NEW.name"],
}


def test_operator_additions_alone_are_not_drift_unless_strict(settings: Settings, dialect: str) -> None:
    commands.upgrade(settings, no_backup=True)
    _run(
        settings,
        *TRIGGER[dialect],
        "CREATE INDEX ops_audit_actor ON audit_events (actor)" if not settings.is_mysql
        else "CREATE INDEX ops_audit_actor ON audit_events (actor(64))",
        "ALTER TABLE projects ADD COLUMN ops_note TEXT",
        "CREATE TABLE ops_reports (id INTEGER PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS goose_db_version (id INTEGER PRIMARY KEY, version_id BIGINT, is_applied BOOLEAN)",
    )
    report = commands.drift(settings)
    assert set(_found(report).values()) == {OPERATOR} and len(report.items) == 4
    assert "extra trigger ops_touch on projects" in _found(report)
    assert not report.drift and "goose_db_version" in report.recognised
    assert cli(settings, "migrate", "drift").exit_code == 0
    strict = cli(settings, "migrate", "drift", "--strict")
    assert strict.exit_code == 9, strict.output


def test_two_databases_of_one_dialect(
    settings: Settings, make_settings: Callable[[], Settings], dialect: str
) -> None:
    """Staging (the reference) has an operator's index production lacks; production lacks an
    index of the revision and has two columns changed by hand: all are named, with the
    statements production needs."""
    staging = make_settings()
    for database in (settings, staging):
        commands.upgrade(database, no_backup=True)
    _run(staging, "CREATE INDEX ops_tokens_last_used ON tokens (last_used_at)")
    _run(settings, _drop_index(settings, "idx_audit_outcome", "audit_events"), *DAMAGE[dialect])
    report = commands.drift(settings, staging)
    assert _found(report) == {
        "missing index idx_audit_outcome on audit_events": DRIFT,
        "missing index ops_tokens_last_used on tokens": DRIFT,
        "column tokens.max_requests: type bigint, expected integer": DRIFT,
        "column projects.deactivated_at: nullable NOT NULL, expected nullable": DRIFT,
    }
    assert "CREATE INDEX ops_tokens_last_used ON tokens (last_used_at);" in report.statements
    back = commands.drift(staging, settings)
    assert _found(back) == {
        "extra index idx_audit_outcome on audit_events": REFERENCE_DRIFT,
        "extra index ops_tokens_last_used on tokens": OPERATOR,
        "column tokens.max_requests: type integer, expected bigint": DRIFT,
        "column projects.deactivated_at: nullable nullable, expected NOT NULL": DRIFT,
    }
    assert back.drift and not any("INDEX" in sql for sql in back.statements)
    assert commands.drift(staging, staging).items == []


def test_two_databases_at_different_revisions(settings: Settings, make_settings: Callable[[], Settings]) -> None:
    other = make_settings()
    commands.upgrade(settings, "0006", no_backup=True)
    commands.upgrade(other, no_backup=True)
    report = commands.drift(settings, other)
    assert report.items[0].difference.object == "revision" and report.drift
    assert "migrate up --to 0007" in (report.items[0].reconciliation.note or "")


@pytest.mark.postgresql
@pytest.mark.parametrize("revision", ["0004", "0007"])
def test_sqlite_and_postgresql_at_one_revision_do_not_drift(
    sqlite_settings: Settings, postgres_url: URL, revision: str
) -> None:
    pg = Settings(driver="postgres", database_url=postgres_url)
    for database in (sqlite_settings, pg):
        commands.upgrade(database, revision, no_backup=True)
    assert commands.drift(sqlite_settings, pg).items == []
    assert commands.drift(pg, sqlite_settings).items == []
    _run(pg, "CREATE INDEX ops_tokens_last_used ON tokens (last_used_at)", *DAMAGE["postgresql"][:1])
    report = commands.drift(sqlite_settings, pg)
    assert _found(report) == {
        "missing index ops_tokens_last_used on tokens": DRIFT,
        "column tokens.max_requests: type integer, expected bigint": DRIFT,
    }
    assert "CREATE INDEX ops_tokens_last_used ON tokens (last_used_at);" in report.statements
    result = cli(sqlite_settings, "migrate", "drift", "--against", pg.sqlalchemy_url().render_as_string(False))
    assert result.exit_code == 9 and "table rebuild" in result.output, result.output


@pytest.mark.postgresql
@pytest.mark.mysql
def test_mysql_and_postgresql_at_head_do_not_drift(postgres_url: URL, mysql_url: URL, tmp_path) -> None:
    pg = Settings(driver="postgres", database_url=postgres_url)
    my = Settings(driver="mysql", database_url=mysql_url)
    lite = Settings(driver="sqlite", database_path=tmp_path / "x.db")
    for database in (pg, my, lite):
        commands.upgrade(database, no_backup=True)
    for one, other in ((my, pg), (pg, my), (my, lite), (lite, my)):
        assert commands.drift(one, other).items == [], (one.driver, other.driver)


def test_service_artefacts_on_an_old_sqlite_file_are_not_drift(sqlite_settings: Settings) -> None:
    """A 2025-12-14+ release's start leaves idx_tokens_token on the token-keyed tokens."""
    commands.upgrade(sqlite_settings, "0004", no_backup=True)
    _run(sqlite_settings, "CREATE INDEX idx_tokens_token ON tokens (token)")
    report = commands.drift(sqlite_settings)
    assert _found(report) == {"extra index idx_tokens_token on tokens": SERVICE} and not report.drift


def test_an_unversioned_database_is_refused(sqlite_settings: Settings) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    _run(sqlite_settings, "DROP TABLE alembic_version")
    with pytest.raises(SchemaMismatchError):
        commands.drift(sqlite_settings)
    result = cli(sqlite_settings, "migrate", "drift", "--json")
    assert result.exit_code == 6 and json.loads(result.stdout)["error"]["exit_code"] == 6


def test_against_options_are_checked(sqlite_settings: Settings, tmp_path) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    other = tmp_path / "other.db"
    result = cli(sqlite_settings, "migrate", "drift", "--against-path", str(other))
    assert result.exit_code == 3 and "Traceback" not in result.output, result.output
    assert not other.exists()
    result = cli(sqlite_settings, "migrate", "drift", "--against-path", "x.db", "--against", "postgres://h/db")
    assert result.exit_code == 2, result.output
    result = cli(sqlite_settings, "migrate", "drift", "--against-path", str(sqlite_settings.database_path))
    assert result.exit_code == 0 and "no drift" in result.output, result.output
