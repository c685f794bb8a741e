"""Drift lines: autogenerate's differences from the head metadata, as readable sentences."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.schema.drift import drift


def _drift_after(settings: Settings, *statements: str) -> list[str]:
    commands.upgrade(settings)
    with connect(settings) as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
        connection.commit()
        return drift(connection)


def test_a_database_at_head_has_no_drift(settings: Settings) -> None:
    """The real chain produces exactly the head metadata, on both dialects."""
    assert _drift_after(settings) == []


def test_added_and_dropped_things_are_named(settings: Settings) -> None:
    """Missing = the head metadata has it; unexpected = only the database has it."""
    lines = _drift_after(
        settings,
        "DROP INDEX idx_tokens_expires_at" + (" ON tokens" if settings.is_mysql else ""),
        "ALTER TABLE projects ADD COLUMN note TEXT",
        "CREATE TABLE extra (id INTEGER PRIMARY KEY)",
    )
    assert sorted(lines) == [
        "column projects.note is unexpected",
        "index idx_tokens_expires_at (expires_at) on tokens is missing",
        "table extra is unexpected",
    ]


@pytest.mark.postgresql
def test_changed_column_definitions_are_described(postgres_url: URL) -> None:
    """Type, nullability and default changes name the column, the old and the expected value."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    lines = _drift_after(
        settings,
        "ALTER TABLE tokens ALTER COLUMN max_requests TYPE BIGINT",
        "ALTER TABLE projects ALTER COLUMN deactivated_at SET NOT NULL",
        "ALTER TABLE tokens ALTER COLUMN request_count SET DEFAULT 5",
        "ALTER TABLE tokens DROP CONSTRAINT tokens_project_id_fkey",
    )
    assert sorted(lines) == [
        "column projects.deactivated_at: nullable is False, head metadata says True",
        "column tokens.max_requests: type is BIGINT, head metadata says INTEGER",
        "column tokens.request_count: default is 5, head metadata says 0",
        "foreign key tokens_project_id_fkey (project_id) on tokens is missing",
    ]
