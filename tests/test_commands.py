"""The library API: status, history, targets, offline SQL, guard against unknown revisions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, UnknownRevisionError
from llm_proxy_db.migration import revisions


def test_status_of_a_missing_sqlite_file_creates_nothing(sqlite_settings):
    status = commands.status(sqlite_settings)
    assert status.current_revision is None
    assert status.pending == revisions.ids()
    assert not status.up_to_date
    assert not sqlite_settings.database_path.exists()


def test_status_moves_with_upgrades_and_downgrades(settings):
    assert commands.upgrade(settings, "0003").applied == ["0001", "0002", "0003"]
    assert commands.status(settings).as_dict() == {
        "database": settings.describe(),
        "current_revision": "0003",
        "head_revision": "0007",
        "pending": ["0004", "0005", "0006", "0007"],
        "up_to_date": False,
        "checksum_warnings": [],
        "detected_state": None,
        "adopted_from": None,
        "tokens_without_id": 0,
        "tokens_with_empty_id": 0,
        "partly_applied": None,
        "unfinished": [],
        "topology": None,
    }
    assert commands.upgrade(settings).after == "0007"
    assert commands.status(settings).up_to_date
    assert commands.upgrade(settings).applied == []
    assert commands.downgrade(settings, "0005").applied == ["0007", "0006"]
    assert commands.downgrade(settings, "base").after is None


def test_history_lists_the_chain_in_order():
    history = commands.history()
    assert [info.id for info in history] == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    assert history[0].down_revision is None
    assert "audit" in history[1].description


def test_targets_in_the_wrong_direction_are_refused(sqlite_settings):
    commands.upgrade(sqlite_settings, "0004")
    with pytest.raises(ConfigError, match="below the current revision"):
        commands.upgrade(sqlite_settings, "0002")
    with pytest.raises(ConfigError, match="above the current revision"):
        commands.downgrade(sqlite_settings, "0006")
    with pytest.raises(ConfigError):
        commands.downgrade(sqlite_settings)
    with pytest.raises(ConfigError, match="at least 1"):
        commands.downgrade(sqlite_settings, steps=0)
    with pytest.raises(ConfigError, match="only 4"):
        commands.downgrade(sqlite_settings, steps=5)
    assert commands.downgrade(sqlite_settings, steps=4).after is None


def test_unknown_and_prefixed_targets():
    assert revisions.resolve("0003") == "0003"
    assert revisions.resolve("head") == "0007"
    assert revisions.resolve("base") is None
    with pytest.raises(UnknownRevisionError, match="unknown revision"):
        revisions.resolve("abc")


def test_a_database_newer_than_the_code_is_refused(settings):
    commands.upgrade(settings)
    with connect(settings) as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
        connection.commit()
    for call in (
        lambda: commands.status(settings),
        lambda: commands.upgrade(settings),
        lambda: commands.downgrade(settings, steps=1),
    ):
        with pytest.raises(UnknownRevisionError, match="'0042'.*does not know"):
            call()


@pytest.mark.parametrize("dialect_settings", ["sqlite", "postgres"])
def test_offline_sql_renders_for_each_dialect(dialect_settings):
    from llm_proxy_db.dialects.resolve import resolve_settings

    url = "postgres://u@h/db" if dialect_settings == "postgres" else None
    settings = resolve_settings(db_driver=dialect_settings, database_url=url, env={})
    up = commands.upgrade_sql(settings)
    assert "CREATE TABLE projects" in up and "COMMIT" in up
    assert ("gen_random_uuid()" in up) == (dialect_settings == "postgres")
    partial = commands.upgrade_sql(settings, "0006", start="0005")
    assert "RENAME" in partial and "CREATE TABLE projects" not in partial
    down = commands.downgrade_sql(settings, "0006")
    assert "Running downgrade 0007 -> 0006" in down
    with pytest.raises(ConfigError):
        commands.upgrade_sql(settings, "0002", start="0004")
    with pytest.raises(ConfigError):
        commands.downgrade_sql(settings, "0006", start="0003")
