"""Destructive downgrades refuse by default, list what they would lose, and run only when
data loss is allowed (after a backup: the SQLite copy, a pg_dump on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import DataLossError
from llm_proxy_db.migration import revisions
from llm_proxy_db.safety import data_loss
from tests.entry_points import ENTRY_POINTS, migrate
from tests.safety_helpers import revision_of, rows, seed, skip_without_pg_client


@pytest.fixture
def db(settings: Settings) -> Settings:
    """A database at head with rows, one project deactivated and a cache hit counted."""
    commands.upgrade(settings, no_backup=True)
    seed(settings)
    with connect(settings) as connection:
        connection.execute(
            sa.text("UPDATE projects SET is_active = false, deactivated_at = CURRENT_TIMESTAMP WHERE id = 'p1'")
        )
        connection.execute(sa.text("UPDATE tokens SET cache_hit_count = 4 WHERE token = 'tok-0-0'"))
        connection.commit()
    return settings


def test_every_revision_has_an_entry() -> None:
    """A new revision must say what its downgrade loses (an empty tuple when nothing)."""
    assert set(data_loss.LOSSES) == set(revisions.ids())


def test_a_lossy_downgrade_refuses_with_the_list_and_changes_nothing(db: Settings) -> None:
    before = rows(db)
    with pytest.raises(DataLossError) as caught:
        commands.downgrade(db, "0002", no_backup=True)
    assert caught.value.exit_code == 11
    found = {(loss.revision, loss.count) for loss in caught.value.losses}  # type: ignore[attr-defined]
    assert ("0005", 6) in found and ("0004", 1) in found and ("0003", 1) in found
    assert "deactivated project(s) would become active" in caught.value.message
    assert revision_of(db) == revisions.head_revision() and rows(db) == before


def test_base_lists_dropped_tables(db: Settings) -> None:
    with pytest.raises(DataLossError) as caught:
        commands.downgrade(db, "base", no_backup=True)
    text = caught.value.message
    assert "20 audit event(s) dropped" in text and "3 project row(s)" in text


def test_a_downgrade_without_losses_runs(db: Settings) -> None:
    assert commands.downgrade(db, "0005", no_backup=True).after == "0005"


def test_allowed_loss_runs_after_a_backup(db: Settings, tmp_path: Path) -> None:
    if not db.is_sqlite:
        skip_without_pg_client(db)
    result = commands.downgrade(db, "0002", allow_data_loss=True, backup_dir=tmp_path / "b")
    assert result.after == "0002"
    assert result.backup is not None and result.backup.exists()
    assert result.backup.stat().st_mode & 0o077 == 0 or db.is_sqlite


def test_allowed_loss_with_no_backup_takes_none(db: Settings, tmp_path: Path) -> None:
    result = commands.downgrade(db, "0003", allow_data_loss=True, no_backup=True, backup_dir=tmp_path)
    assert result.after == "0003" and result.backup is None and list(tmp_path.glob("*.dump")) == []


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_cli_exit_code_and_option(db: Settings, entry: str) -> None:
    """``llm-proxy-db migrate down`` and plain ``alembic downgrade`` refuse alike, and run when allowed."""
    before = rows(db)
    refused = migrate(db, entry, "down", "0003", no_backup=True)
    assert refused.exit_code == 11, refused.output
    flag = "--allow-data-loss" if entry == "cli" else "-x allow-data-loss=true"
    assert flag in refused.output and "0004: 1 token cache-hit" in refused.output
    assert "Traceback" not in refused.output
    assert revision_of(db) == revisions.head_revision() and rows(db) == before
    allowed = migrate(db, entry, "down", "0003", no_backup=True, allow_data_loss=True)
    assert allowed.exit_code == 0, allowed.output
    assert revision_of(db) == "0003"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_down_to_base_refuses_then_runs_after_a_backup(db: Settings, entry: str, tmp_path: Path) -> None:
    """The issue's case: ``alembic downgrade base`` on a database with rows dropped every table, exit 0."""
    if not db.is_sqlite:
        skip_without_pg_client(db)
    before = rows(db)
    tmp_path = tmp_path / "backups"
    refused = migrate(db, entry, "down", "base", backup_dir=tmp_path)
    assert refused.exit_code == 11, refused.output
    assert "project row(s) dropped" in refused.output and "Error: the downgrade would lose data" in refused.output
    assert rows(db) == before and not tmp_path.exists()
    allowed = migrate(db, entry, "down", "base", backup_dir=tmp_path, allow_data_loss=True)
    assert allowed.exit_code == 0, allowed.output
    assert revision_of(db) is None and len(list(tmp_path.iterdir())) == 1
    log = commands.log(db)
    assert log[-1].action == "downgrade" and log[-1].to_revision is None
    assert log[-1].backup_file == str(next(tmp_path.iterdir()))


def _add_events(settings: Settings) -> None:
    """Two events 0006 forbids: a denied one with a reason, an error without one."""
    with connect(settings) as connection:
        for event, outcome, reason in (("ev-d", "denied", "'bad key'"), ("ev-e", "error", "NULL")):
            connection.execute(sa.text(
                "INSERT INTO audit_events (id, timestamp, action, actor, outcome, reason) "
                f"VALUES ('{event}', '2025-01-01 00:00:00', 'auth', 'svc', '{outcome}', {reason})"
            ))
        connection.commit()


def _events(settings: Settings) -> dict[str, tuple[str, str | None]]:
    with connect(settings) as connection:
        found = connection.execute(sa.text("SELECT id, outcome, reason FROM audit_events")).all()
    return {row[0]: (row[1], row[2]) for row in found}


def test_reverting_0007_over_denied_events_hint_and_behaviour_agree(db: Settings) -> None:
    """Issue 21 item 12: the exit-11 hint said --allow-data-loss was enough, and with it the
    run failed (exit 4; MySQL "failed part-way" though nothing changed).  Now the hint says what
    the flag does, and with it every row is kept: folded to ``failure``, the original outcome
    kept at the start of ``reason``; on every dialect."""
    from tests.test_cli_safety import cli

    _add_events(db)
    before = _events(db)
    refused = cli(db, "migrate", "down", "--steps", "1", "--no-backup")
    assert refused.exit_code == 11, refused.output
    assert "0007: 2 audit event(s) with outcome denied/error" in refused.output
    assert "recorded as outcome failure" in refused.output and "--allow-data-loss" in refused.output
    assert revision_of(db) == "0007" and _events(db) == before
    allowed = cli(db, "migrate", "down", "--steps", "1", "--no-backup", "--allow-data-loss")
    assert allowed.exit_code == 0, allowed.output
    assert revision_of(db) == "0006"
    after = _events(db)
    assert set(after) == set(before)  # not one row lost
    assert after["ev-d"] == ("failure", "[outcome was denied] bad key")
    assert after["ev-e"] == ("failure", "[outcome was error] ")
    assert all(after[key] == before[key] for key in before if key not in ("ev-d", "ev-e"))
    assert commands.upgrade(db, no_backup=True).after == revisions.head_revision()


def test_a_downgrade_run_without_the_guard_refuses_before_changing_anything(db: Settings) -> None:
    """The executor alone (no guard, data loss not allowed) refuses with exit 11 and "nothing
    was changed", on MySQL too (its refusal comes before the first DDL statement)."""
    from llm_proxy_db.migration.executor import run

    _add_events(db)
    with connect(db, foreign_keys=False) as connection, pytest.raises(DataLossError) as caught:
        run(connection, "0006")
    assert "nothing was changed" in caught.value.message and "--allow-data-loss" in (caught.value.hint or "")
    assert revision_of(db) == "0007" and _events(db)["ev-d"] == ("denied", "bad key")
