"""Never drop what we don't know: the operator's column, index, trigger and view outlive every revision.

SQLite rebuilds ``tokens`` in 0005 (up and down); PostgreSQL and MySQL alter in place.  On each, an
operator's ``tokens.owner_email`` with its index, a trigger and a view must survive up to head
and down again, with their data; what a rebuild cannot carry (a column under a constraint) is
refused before any change, naming it.  Adoption refuses an unknown column or index by name
(docs/adoption.md) and keeps triggers and views.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError, SchemaMismatchError
from llm_proxy_db.migration import run_log
from llm_proxy_db.safety import rehearse
from tests import field_shapes, legacy
from tests.seed import seed

SQLITE_TRIGGER = (
    "CREATE TRIGGER tokens_owner_stamp AFTER INSERT ON tokens WHEN NEW.owner_email IS NULL "
    "BEGIN UPDATE tokens SET owner_email = 'nobody@example.com' WHERE token = NEW.token; END"
)
POSTGRES_TRIGGER = [
    "CREATE FUNCTION tokens_owner_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.owner_email IS NULL THEN NEW.owner_email := 'nobody@example.com'; END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER tokens_owner_stamp BEFORE INSERT ON tokens FOR EACH ROW "
    "EXECUTE FUNCTION tokens_owner_stamp()",
]
# MySQL: a trigger is one statement; TEXT cannot carry a plain DEFAULT (MySQL 8) nor a whole-
# column index, and || is OR there: the column is a VARCHAR and strings are joined by CONCAT.
MYSQL_TRIGGER = (
    "CREATE TRIGGER tokens_owner_stamp BEFORE INSERT ON tokens FOR EACH ROW "
    "SET NEW.owner_email = COALESCE(NEW.owner_email, 'nobody@example.com')"
)
VIEW = "CREATE VIEW token_owners AS SELECT token, owner_email FROM tokens"


def _trigger(settings: Settings) -> list[str]:
    if settings.is_mysql:
        return [MYSQL_TRIGGER]
    return [SQLITE_TRIGGER] if settings.is_sqlite else POSTGRES_TRIGGER


def _owner_of_token(settings: Settings) -> str:
    """``'owner-' || token`` in the dialect's spelling."""
    return "CONCAT('owner-', token)" if settings.is_mysql else "'owner-' || token"


def _add_operator_objects(settings: Settings) -> None:
    with connect(settings) as connection:
        kind = "VARCHAR(191)" if settings.is_mysql else "TEXT"
        connection.exec_driver_sql(f"ALTER TABLE tokens ADD COLUMN owner_email {kind} DEFAULT 'ops@example.com'")
        connection.exec_driver_sql(f"UPDATE tokens SET owner_email = {_owner_of_token(settings)}")
        connection.exec_driver_sql("CREATE INDEX idx_tokens_owner_email ON tokens(owner_email)")
        for statement in _trigger(settings):
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(VIEW)
        connection.commit()


def _assert_operator_objects(settings: Settings) -> None:
    with connect(settings) as connection:
        inspector = sa.inspect(connection)
        columns = {column["name"]: column for column in inspector.get_columns("tokens")}
        assert "owner_email" in columns
        assert "idx_tokens_owner_email" in {index["name"] for index in inspector.get_indexes("tokens")}
        assert "token_owners" in inspector.get_view_names()
        wrong = connection.exec_driver_sql(
            f"SELECT count(*) FROM tokens WHERE owner_email IS NULL OR owner_email <> {_owner_of_token(settings)}"
        ).scalar_one()
        assert wrong == 0, "owner_email values were lost"
        assert connection.exec_driver_sql("SELECT count(*) FROM token_owners").scalar_one() > 0
        connection.commit()
    _assert_trigger_fires(settings)


def _assert_trigger_fires(settings: Settings) -> None:
    with connect(settings) as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("tokens")}
        values = {"token": "tok-trigger", "project_id": "proj-1"}
        if "id" in columns:
            values["id"] = "00000000-0000-4000-8000-000000000001"
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        connection.execute(sa.text(f"INSERT INTO tokens ({names}) VALUES ({marks})"),
                           values)
        connection.exec_driver_sql("UPDATE tokens SET owner_email = NULL WHERE token = 'tok-trigger'")
        connection.rollback()
        if settings.is_sqlite:
            count = connection.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'tokens_owner_stamp'"
            ).scalar_one()
        elif settings.is_mysql:
            count = connection.exec_driver_sql(
                "SELECT count(*) FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = 'tokens_owner_stamp'"
            ).scalar_one()
        else:
            count = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'tokens_owner_stamp'"
            ).scalar_one()
        assert count == 1
        connection.commit()


def test_operator_objects_survive_up_to_head_and_down_again(settings) -> None:
    """Added at 0004, kept through 0005-0007 and back down to 0004, with their data
    (MySQL: revisions ALTER in place, statement by statement)."""
    commands.upgrade(settings, "0004")
    with connect(settings) as connection:
        seed(connection)
    _add_operator_objects(settings)
    rehearsal = rehearse.rehearse(settings) if settings.is_sqlite else None
    assert rehearsal is None or rehearsal.ok
    commands.upgrade(settings)
    _assert_operator_objects(settings)
    commands.downgrade(settings, "0004", allow_data_loss=True, no_backup=True)  # token ids go
    _assert_operator_objects(settings)
    commands.upgrade(settings)
    _assert_operator_objects(settings)


def test_a_column_under_a_constraint_is_refused_before_any_change(sqlite_settings) -> None:
    """The rebuild cannot carry a UNIQUE column it does not know: refused, named, unchanged."""
    commands.upgrade(sqlite_settings, "0004")
    with connect(sqlite_settings) as connection:
        seed(connection)
        connection.exec_driver_sql("ALTER TABLE tokens ADD COLUMN ref TEXT REFERENCES projects(id)")
        connection.commit()
    before = _everything_but_the_run_log(sqlite_settings)
    with pytest.raises(MigrationError) as refused:
        commands.upgrade(sqlite_settings, no_backup=True)
    assert "column(s) ref" in refused.value.message and "refusing before any change" in refused.value.message
    assert _everything_but_the_run_log(sqlite_settings) == before  # only the refusal was logged
    with connect(sqlite_settings) as connection:
        assert run_log.entries(connection)[-1].outcome == "failure"
    assert commands.status(sqlite_settings).current_revision == "0004"


def test_an_index_on_a_column_the_downgrade_drops_is_refused(sqlite_settings) -> None:
    """Down from 0005 drops tokens.id: an operator's index on it is named, nothing changes."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection:
        seed(connection)
        connection.exec_driver_sql("CREATE INDEX idx_mine ON tokens(id, token)")
        connection.commit()
    with pytest.raises(MigrationError) as refused:
        commands.downgrade(sqlite_settings, "0004", no_backup=True, allow_data_loss=True)
    assert "index idx_mine" in refused.value.message
    assert commands.status(sqlite_settings).current_revision == "0005"


def test_a_view_that_no_longer_fits_stops_the_revision_named(sqlite_settings) -> None:
    """A view naming tokens.id cannot outlive the downgrade that drops id: rolled back, named."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql("CREATE VIEW token_ids AS SELECT id FROM tokens")
        connection.commit()
    with pytest.raises(MigrationError) as refused:
        commands.downgrade(sqlite_settings, "0004", no_backup=True, allow_data_loss=True)
    assert "view token_ids" in refused.value.message
    assert commands.status(sqlite_settings).current_revision == "0005"
    with connect(sqlite_settings) as connection:
        assert "token_ids" in sa.inspect(connection).get_view_names()


def test_force_stamp_keeps_operator_objects(sqlite_settings) -> None:
    """--force-stamp then the rebuilds: the same promise as a verified adoption."""
    shape = next(s for s in field_shapes.sqlite_shapes() if s.name == "2025-12-02")
    field_shapes.build(sqlite_settings, shape)
    _add_operator_objects(sqlite_settings)
    commands.adopt(sqlite_settings, force_stamp="0004")
    _assert_operator_objects(sqlite_settings)


def test_adoption_refuses_an_unknown_column_by_name_and_keeps_triggers_and_views(tmp_path, request) -> None:
    """A field shape with the operator's column is refused naming it; triggers and views are kept."""
    shape = next(s for s in field_shapes.sqlite_shapes() if s.name == "2025-05-21+2025-12-14")
    settings = legacy.settings_for("sqlite", tmp_path, request)
    field_shapes.build(settings, shape)
    with connect(settings) as connection:
        connection.exec_driver_sql("ALTER TABLE tokens ADD COLUMN owner_email TEXT")
        connection.commit()
    assert settings.database_path is not None
    before = settings.database_path.read_bytes()
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert "unexpected column tokens.owner_email" in refused.value.differences
    assert settings.database_path.read_bytes() == before
    with connect(settings) as connection:
        connection.exec_driver_sql("ALTER TABLE tokens DROP COLUMN owner_email")
        connection.exec_driver_sql(
            "CREATE TRIGGER tokens_touch AFTER UPDATE ON tokens BEGIN "
            "UPDATE projects SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.project_id; END"
        )
        connection.exec_driver_sql("CREATE VIEW live_tokens AS SELECT token FROM tokens WHERE is_active")
        connection.commit()
    commands.setup(settings)
    with connect(settings) as connection:
        names = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master")}
    assert {"tokens_touch", "live_tokens"} <= names


def _everything_but_the_run_log(settings) -> list[str]:
    """The whole database as SQL, but for this tool's own run log (which records a refusal)."""
    import sqlite3

    with sqlite3.connect(settings.database_path) as raw:
        return [line for line in raw.iterdump() if "llm_proxy_run_log" not in line]
