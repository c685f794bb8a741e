"""Revisions whose cost does not grow with the audit log, and migrations that never queue.

0007 widens the audit outcome CHECK: on SQLite in place (no copy of ``audit_events``), on
PostgreSQL as ``NOT VALID`` then ``VALIDATE`` in a second transaction.  Every PostgreSQL
migration transaction carries a ``lock_timeout``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, DataLossError, MigrationError
from llm_proxy_db.migration.environment import lock_timeout
from llm_proxy_db.migration.revision_helpers import replace_check_in
from tests.seed import is_check_violation

EVENT = (
    "INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
    "VALUES (:id, CURRENT_TIMESTAMP, 'token.use', 'svc', :outcome)"
)


def _insert_event(settings: Settings, event_id: str, outcome: str) -> None:
    with connect(settings) as connection:
        connection.execute(sa.text(EVENT), {"id": event_id, "outcome": outcome})
        connection.commit()


def _rejects(settings: Settings, outcome: str) -> bool:
    try:
        _insert_event(settings, f"x-{outcome}", outcome)
    except sa.exc.DBAPIError as error:
        if is_check_violation(error):
            return True
        raise
    return False


def _integrity(settings: Settings) -> list[str]:
    with connect(settings) as connection:
        return [row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check")]


def _audit_rootpage(settings: Settings) -> int:
    with connect(settings) as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'"
            ).scalar_one()
        )


def test_outcome_check_is_widened_and_narrowed(settings: Settings) -> None:
    """After 0007 'denied' is stored and 'bogus' refused; after downgrading 'denied' is refused."""
    commands.upgrade(settings, "0006")
    _insert_event(settings, "kept", "failure")
    commands.upgrade(settings)
    _insert_event(settings, "new", "denied")
    assert _rejects(settings, "bogus")
    with connect(settings) as connection:
        connection.exec_driver_sql("DELETE FROM audit_events WHERE outcome = 'denied'")
        connection.commit()
    commands.downgrade(settings, "0006")
    assert _rejects(settings, "denied")
    _insert_event(settings, "old", "success")
    with connect(settings) as connection:
        ids = connection.exec_driver_sql("SELECT id FROM audit_events ORDER BY id").scalars().all()
    assert ids == ["kept", "old"]
    if settings.is_sqlite:
        assert _integrity(settings) == ["ok"]


def test_sqlite_widening_copies_no_row(sqlite_settings: Settings) -> None:
    """The table keeps its b-tree (same root page): nothing was copied, the schema is sound."""
    commands.upgrade(sqlite_settings, "0006")
    for number in range(50):
        _insert_event(sqlite_settings, f"e{number}", "success")
    before = _audit_rootpage(sqlite_settings)
    commands.upgrade(sqlite_settings)
    assert _audit_rootpage(sqlite_settings) == before
    assert _integrity(sqlite_settings) == ["ok"]
    with connect(sqlite_settings) as connection:
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'audit_events'"
        ).scalar_one()
        indexes = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' "
            "AND name LIKE 'idx_audit_%'"
        ).scalar_one()
    assert "'success', 'failure', 'denied', 'error'" in sql
    assert indexes == 7


def test_downgrade_over_denied_rows_refuses_or_keeps_them_as_failures(settings: Settings) -> None:
    """Rows the old CHECK forbids stop the downgrade (exit 11, the wider CHECK stays); with
    ``--allow-data-loss`` they are kept as ``failure`` events (issue 21, item 12)."""
    commands.upgrade(settings)
    _insert_event(settings, "d", "denied")
    with pytest.raises(DataLossError, match="denied"):
        commands.downgrade(settings, "0006", no_backup=True)
    assert commands.status(settings).current_revision == "0007"
    _insert_event(settings, "e", "error")
    if settings.is_sqlite:
        assert _integrity(settings) == ["ok"]
    commands.downgrade(settings, "0006", allow_data_loss=True, no_backup=True)
    assert commands.status(settings).current_revision == "0006"
    with connect(settings) as connection:
        kept = dict(connection.exec_driver_sql("SELECT id, outcome FROM audit_events WHERE id IN ('d', 'e')").all())
    assert kept == {"d": "failure", "e": "failure"}


@pytest.mark.postgresql
def test_postgres_check_ends_validated(postgres_url) -> None:
    """Both directions leave a validated constraint (NOT VALID is only a stage)."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings)
    assert _validated(settings) == [True]
    commands.downgrade(settings, "0006")
    assert _validated(settings) == [True]


def _validated(settings: Settings) -> list[bool]:
    with connect(settings) as connection:
        return list(
            connection.exec_driver_sql(
                "SELECT convalidated FROM pg_constraint "
                "WHERE conname = 'audit_events_outcome_check'"
            ).scalars()
        )


def test_offline_sql(dialect: str, tmp_path: Path) -> None:
    """``--sql`` output: SQLite renders a rebuild, PostgreSQL validates after a COMMIT."""
    if dialect == "sqlite":
        settings = Settings(driver="sqlite", database_path=tmp_path / "x.db")
    else:
        settings = Settings(driver="postgres", database_url=sa.make_url("postgresql+psycopg://u@h/d"))
    sql = commands.upgrade_sql(settings, "0007", start="0006")
    if dialect == "sqlite":
        assert "_alembic_tmp_audit_events" in sql
    else:
        not_valid = sql.index("NOT VALID")
        validate = sql.index("VALIDATE CONSTRAINT audit_events_outcome_check")
        assert "COMMIT" in sql[not_valid:validate]


@pytest.mark.parametrize(
    "create",
    [
        "CREATE TABLE audit_events (id TEXT, "
        "outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')))",
        'CREATE TABLE "audit_events" (\n\tid TEXT, \n\toutcome TEXT NOT NULL, \n\t'
        'CHECK ("outcome" IN (\'success\',\'failure\'))\n)',
        "CREATE TABLE audit_events (id TEXT, outcome TEXT, "
        "CONSTRAINT ck check( outcome  in ( 'success' ) ) )",
    ],
)
def test_replace_check_in_finds_the_check_in_any_spelling(create: str) -> None:
    """Service DDL, Alembic's batch output and hand-written variants are all recognised."""
    new = replace_check_in(create, "outcome", ("success", "denied"))
    assert "CHECK (outcome IN ('success', 'denied'))" in new
    assert new.startswith(create[:20])


@pytest.mark.parametrize(
    ("create", "found"),
    [
        ("CREATE TABLE audit_events (id TEXT, outcome TEXT)", 0),
        ("CREATE TABLE t (outcome TEXT CHECK (outcome IN ('a')), CHECK (outcome IN ('b')))", 2),
    ],
)
def test_replace_check_in_refuses_ambiguity(create: str, found: int) -> None:
    """No CHECK or several: the revision fails clearly instead of guessing."""
    with pytest.raises(MigrationError, match=f"found {found}"):
        replace_check_in(create, "outcome", ("a",))


def test_lock_timeout_setting() -> None:
    """Durations in PostgreSQL's forms are accepted; anything else is a configuration error."""
    assert lock_timeout({}) == "1s"
    assert lock_timeout({"LLM_PROXY_TABLE_LOCK_TIMEOUT": "250ms"}) == "250ms"
    with pytest.raises(ConfigError, match="not a duration"):
        lock_timeout({"LLM_PROXY_TABLE_LOCK_TIMEOUT": "5 seconds; DROP TABLE x"})


@pytest.mark.postgresql
def test_postgres_migration_gives_up_on_a_busy_table(postgres_url, monkeypatch) -> None:
    """A revision waiting for a lock held by a long transaction fails fast and rolls back."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings)
    monkeypatch.setenv("LLM_PROXY_TABLE_LOCK_TIMEOUT", "200ms")
    with connect(settings) as reader:
        reader.exec_driver_sql("SELECT count(*) FROM audit_events").scalar()  # holds ACCESS SHARE
        with pytest.raises(MigrationError, match="lock timeout") as raised:
            commands.downgrade(settings, "0006")
        assert "audit_events" in raised.value.message  # the table it waited for
        assert raised.value.hint and "LLM_PROXY_TABLE_LOCK_TIMEOUT" in raised.value.hint
        assert "pg_blocking_pids" in raised.value.hint
        reader.rollback()
    assert commands.status(settings).current_revision == "0007"


@pytest.mark.postgresql
def test_postgres_lock_timeout_is_set_in_every_revision(
    postgres_url, tmp_path, monkeypatch
) -> None:
    """A revision sees the configured lock_timeout; the session keeps its own afterwards."""
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "9001_probe.py").write_text(
        'revision = "9001"\ndown_revision = "0007"\nbranch_labels = None\ndepends_on = None\n'
        "from alembic import op\n\n"
        "def upgrade():\n"
        "    op.execute(\"CREATE TABLE probe AS SELECT current_setting('lock_timeout') AS v\")\n\n"
        "def downgrade():\n    op.execute('DROP TABLE probe')\n"
    )
    settings = Settings(driver="postgres", database_url=postgres_url)
    monkeypatch.setenv("LLM_PROXY_TABLE_LOCK_TIMEOUT", "1234ms")
    commands.upgrade(settings, "9001", version_locations=[str(versions)])
    with connect(settings) as connection:
        assert connection.exec_driver_sql("SELECT v FROM probe").scalar_one() == "1234ms"
        assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() != "1234ms"  # not leaked


def test_sqlite_token_ids_are_computed_in_the_one_copy(sqlite_settings: Settings) -> None:
    """0005 fills tokens.id during the rebuild: every row kept, one distinct UUID v4 each."""
    commands.upgrade(sqlite_settings, "0004")
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql(
            "INSERT INTO projects (id, name, openai_api_key) VALUES ('p', 'p', 'k')"
        )
        connection.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
            "INSERT INTO tokens (token, project_id) SELECT 'tok' || i, 'p' FROM n"
        )
        connection.commit()
    commands.upgrade(sqlite_settings, "0005")
    with connect(sqlite_settings) as connection:
        ids = connection.exec_driver_sql("SELECT id FROM tokens").scalars().all()
        indexes = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tokens' "
            "AND name LIKE 'idx_%' ORDER BY name"
        ).scalars().all()
    assert len(ids) == len(set(ids)) == 300
    assert all(len(value) == 36 and value[14] == "4" and value[19] in "89ab" for value in ids)
    assert indexes == [
        "idx_tokens_expires_at", "idx_tokens_is_active", "idx_tokens_project_id", "idx_tokens_token"
    ]
    assert _integrity(sqlite_settings) == ["ok"]


DANGLING_REVISIONS = {
    "drop_parent": "op.execute('DROP TABLE projects')\n"
    "    op.execute('CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT, api_key TEXT)')",
    "referencing_default": "op.execute(\"ALTER TABLE audit_events ADD COLUMN p TEXT "
    "REFERENCES projects(id) DEFAULT 'nowhere'\")",
    "delete_rows": "op.execute('DELETE FROM projects')",
}


@pytest.mark.parametrize("body", DANGLING_REVISIONS.values(), ids=DANGLING_REVISIONS.keys())
def test_sqlite_foreign_key_check_still_runs_when_references_can_break(
    sqlite_settings: Settings, tmp_path: Path, body: str
) -> None:
    """The check is skipped only for revisions that cannot break a reference: not these."""
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "9002_break.py").write_text(
        'revision = "9002"\ndown_revision = "0007"\nbranch_labels = None\ndepends_on = None\n'
        f"from alembic import op\n\ndef upgrade():\n    {body}\n\ndef downgrade():\n    pass\n"
    )
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql("INSERT INTO projects (id, name, api_key) VALUES ('p', 'p', 'k')")
        connection.exec_driver_sql("INSERT INTO tokens (id, token, project_id) VALUES ('i', 't', 'p')")
        connection.execute(sa.text(EVENT), {"id": "e", "outcome": "success"})
        connection.commit()
    with pytest.raises(MigrationError, match="foreign key violation"):
        commands.upgrade(sqlite_settings, "9002", version_locations=[str(versions)])
    assert commands.status(sqlite_settings).current_revision == "0007"


def test_sqlite_foreign_key_check_skipped_where_nothing_can_break(sqlite_settings: Settings) -> None:
    """0003, 0004 and 0006 only add or rename columns: no full foreign-key pass for them."""
    commands.upgrade(sqlite_settings, "0002")
    checks: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if "foreign_key_check" in statement:
            checks.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = commands.upgrade(sqlite_settings)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert result.applied == ["0003", "0004", "0005", "0006", "0007"]
    # one before the run (guard: old violations are refused, not blamed on a revision),
    # then 0005 (table copy) and 0007 (schema text edit)
    assert len(checks) == 3
