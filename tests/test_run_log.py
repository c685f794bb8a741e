"""The run log: every revision applied or reverted, adoption and restore is recorded on the
database; `migrate history` says whether and when each revision was applied; reads never
create the table; the service's schema and the fingerprints never see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError
from llm_proxy_db.migration import run_log
from llm_proxy_db.safety import backup
from tests.test_cli_safety import cli


def has_log(settings: Settings) -> bool:
    with connect(settings, create=False) as connection:
        return sa.inspect(connection).has_table(run_log.RUN_LOG_TABLE)


def test_every_step_is_recorded_with_who_and_when(settings: Settings) -> None:
    commands.upgrade(settings, no_backup=True)
    commands.downgrade(settings, steps=2, no_backup=True)
    entries = commands.log(settings)
    assert [(e.action, e.revision) for e in entries][-3:] == [
        ("upgrade", "0007"), ("downgrade", "0007"), ("downgrade", "0006"),
    ]
    first = entries[0]
    assert first.from_revision is None and first.to_revision == "0001" and first.outcome == "success"
    assert first.host and first.os_user and first.tool_version and first.seconds >= 0


def test_history_shows_applied_and_pending_with_times(settings: Settings) -> None:
    commands.upgrade(settings, "0005", no_backup=True)
    states = {info.id: info for info in commands.history(settings)}
    assert states["0005"].applied and states["0005"].applied_at is not None
    assert states["0006"].applied is False and states["0006"].applied_at is None
    data = json.loads(cli(settings, "migrate", "history", "--json").stdout)
    assert data[4]["applied"] is True and data[4]["applied_at"].endswith("Z")
    assert data[6] == {**data[6], "applied": False, "applied_at": None}


def test_reads_never_create_the_table(settings: Settings) -> None:
    with connect(settings) as connection:  # an existing, empty database
        connection.commit()
    assert commands.log(settings) == [] and not has_log(settings)
    assert all(info.applied is False for info in commands.history(settings))
    assert not has_log(settings)
    text = cli(settings, "migrate", "log")
    assert text.exit_code == 0 and "no runs recorded" in text.stdout


def test_a_failed_step_is_recorded_after_its_rollback(sqlite_settings: Settings) -> None:
    commands.upgrade(sqlite_settings, "0006", no_backup=True)
    with connect(sqlite_settings) as connection:  # 0007 needs the audit table it rewrites
        connection.exec_driver_sql("DROP TABLE audit_events")
        connection.commit()
    with pytest.raises(MigrationError):
        commands.upgrade(sqlite_settings, no_backup=True)
    last = commands.log(sqlite_settings)[-1]
    assert (last.action, last.revision, last.outcome) == ("upgrade", "0007", "failure")
    assert last.detail and "0007" in last.detail


def test_restore_and_adoption_are_recorded(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    saved = backup.backup(sqlite_settings, tmp_path / "saved.bak")
    backup.restore(sqlite_settings, saved)
    last = commands.log(sqlite_settings)[-1]
    assert last.action == "restore" and last.to_revision == "0007" and last.backup_file
    result = CliRunner().invoke(
        app, ["--database-path", str(sqlite_settings.database_path), "migrate", "log", "--json", "--limit", "1"]
    )
    assert json.loads(result.stdout)[0]["action"] == "restore"


def test_the_log_is_invisible_to_status_and_drift(settings: Settings) -> None:
    commands.upgrade(settings, no_backup=True)
    assert has_log(settings)
    status = commands.status(settings)
    assert status.up_to_date
    commands.downgrade(settings, "base", no_backup=True)
    at_base = commands.status(settings)
    assert at_base.current_revision is None and len(at_base.pending) == 7
    assert commands.upgrade(settings, no_backup=True).after == "0007"  # nothing in the way
