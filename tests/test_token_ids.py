"""Tokens an older release writes without ``id`` are reported by status and filled at the next start.

A replica of a release from before the token-id change inserts tokens without ``id``
(reference section 6).  On SQLite the head DDL has no default, so ``id`` stays NULL; on
PostgreSQL the column default fills it.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from llm_proxy_db import commands
from llm_proxy_db.cli import fast_path
from llm_proxy_db.cli.render import render_run, render_status
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import sqlite as sqlite_dialect
from tests.seed import seed

OLD_RELEASE_INSERT = (
    "INSERT INTO tokens (token, project_id, expires_at, is_active, request_count, max_requests, "
    "created_at, last_used_at) VALUES (?, 'proj-1', NULL, TRUE, 0, NULL, CURRENT_TIMESTAMP, NULL)"
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _old_release_writes(settings: Settings, *tokens: str) -> None:
    with connect(settings) as connection:
        for token in tokens:
            connection.exec_driver_sql(OLD_RELEASE_INSERT.replace("?", f"'{token}'"))
        connection.commit()


def _ids(settings: Settings, *tokens: str) -> list[str | None]:
    with connect(settings) as connection:
        marks = ", ".join(f"'{token}'" for token in tokens)
        rows = connection.exec_driver_sql(f"SELECT id FROM tokens WHERE token IN ({marks})").all()
        connection.commit()
    return [None if row[0] is None else str(row[0]) for row in rows]


def test_status_reports_and_setup_fills_tokens_without_id(sqlite_settings) -> None:
    """Written after 0005 by an old replica: status warns, the fast path steps aside, setup fills."""
    commands.setup(sqlite_settings)
    with connect(sqlite_settings) as connection:
        seed(connection)
    _old_release_writes(sqlite_settings, "old-1", "old-2")
    assert _ids(sqlite_settings, "old-1", "old-2") == [None, None]
    status = commands.status(sqlite_settings)
    assert status.tokens_without_id == 2 and status.as_dict()["tokens_without_id"] == 2
    assert "2 token(s) have no id" in render_status(status)
    argv = ["--database-path", str(sqlite_settings.database_path), "migrate", "status"]
    assert fast_path.output_at_head(argv) is None  # the fast path cannot miss them
    result = commands.setup(sqlite_settings)
    assert result.filled_token_ids == 2 and result.changed
    assert "gave 2 token(s) without id" in render_run(result)
    assert all(UUID.match(value or "") for value in _ids(sqlite_settings, "old-1", "old-2"))
    assert commands.status(sqlite_settings).tokens_without_id == 0
    assert fast_path.output_at_head(argv) is not None
    again = commands.setup(sqlite_settings)
    assert again.filled_token_ids == 0 and not again.changed


def test_rows_an_old_replica_writes_after_the_upgrade_are_filled_by_that_run(sqlite_settings) -> None:
    """Up from 0004 with an old writer: the run that reaches head fills what it finds."""
    commands.upgrade(sqlite_settings, "0004")
    with connect(sqlite_settings) as connection:
        seed(connection)
    _old_release_writes(sqlite_settings, "before-0005")
    commands.upgrade(sqlite_settings)
    _old_release_writes(sqlite_settings, "after-0005")
    assert _ids(sqlite_settings, "after-0005") == [None]
    assert commands.setup(sqlite_settings).filled_token_ids == 1
    assert all(UUID.match(value or "") for value in _ids(sqlite_settings, "before-0005", "after-0005"))


def test_the_probe_at_head_is_one_indexed_query(sqlite_settings) -> None:
    """The startup check's extra read uses the primary key's index, never a table scan."""
    commands.setup(sqlite_settings)
    assert sqlite_settings.database_path is not None
    db = sqlite3.connect(sqlite_settings.database_path)
    plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sqlite_dialect.NULL_IDS}"))
    db.close()
    assert "USING" in plan and "INDEX" in plan and not plan.startswith("SCAN tokens"), plan


def test_an_old_replica_token_has_an_id_after_the_next_start(settings) -> None:
    """PostgreSQL: the column default gives it one (nothing to report); SQLite: setup does."""
    if settings.is_mysql:
        pytest.skip("no release before the token-id change ran on MySQL (MySQL support came "
                    "with goose MySQL file 4's CHAR(36) id, reference section 3b)")
    commands.setup(settings)
    with connect(settings) as connection:
        seed(connection, projects=2, tokens=2, events=0)
    _old_release_writes(settings, "old-1")
    missing = 0 if settings.is_sqlite is False else 1
    assert commands.status(settings).tokens_without_id == missing
    assert commands.setup(settings).filled_token_ids == missing
    assert _ids(settings, "old-1") != [None]
    assert commands.status(settings).tokens_without_id == 0
