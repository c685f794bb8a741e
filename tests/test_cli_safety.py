"""The safety net through the ``llm-proxy`` CLI: options, exit codes, rendering."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.render import progress_printer, render_rehearsal
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.executor import ProgressEvent, StepTiming
from llm_proxy_db.safety import locking
from llm_proxy_db.safety.rehearse import RehearsalResult
from tests.entry_points import ENTRY_POINTS, migrate
from tests.safety_helpers import HEAD, revision_of, rows, seed, skip_without_pg_client

runner = CliRunner()


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None):
    """Run ``llm-proxy`` against ``settings``; returns the Click result."""
    from llm_proxy_db.cli.app import app

    if settings.is_sqlite:
        target = ["--database-path", str(settings.database_path)]
    else:
        url = settings.sqlalchemy_url().render_as_string(hide_password=False)
        target = ["--db-driver", settings.driver, "--database-url", url]
    return runner.invoke(app, [*target, *args], env=env)


def test_migrate_up_reports_the_backup(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings, "0005")
    result = cli(sqlite_settings, "migrate", "up", "--backup-dir", str(tmp_path / "bk"),
                 "--keep-backups", "3", "--lock-timeout", "5")
    assert result.exit_code == 0, result.output
    assert f"revision: 0005 -> {HEAD}" in result.output
    assert f"backup:   {tmp_path / 'bk'}" in result.output


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_migrate_up_blocked_by_an_unwritable_backup_dir(
    sqlite_settings: Settings, tmp_path: Path, entry: str
) -> None:
    commands.upgrade(sqlite_settings, "0005")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = migrate(sqlite_settings, entry, "up", "head", backup_dir=blocker / "sub")
    assert result.exit_code == 8, result.output
    assert "Error: cannot write the backup" in result.output and "Traceback" not in result.output
    assert revision_of(sqlite_settings) == "0005"
    if entry == "alembic":
        assert migrate(sqlite_settings, entry, "up", "head", no_backup=True).exit_code == 0
        return
    result = cli(sqlite_settings, "migrate", "up", "--backup-dir", str(blocker), "--no-backup")
    assert result.exit_code == 2 and "contradict" in result.output, result.output
    result = cli(sqlite_settings, "migrate", "up", "--no-backup")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_migrate_down_takes_a_backup(sqlite_settings: Settings, tmp_path: Path, entry: str) -> None:
    commands.upgrade(sqlite_settings)
    result = migrate(sqlite_settings, entry, "down", "-1", backup_dir=tmp_path)
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob(f"*.{HEAD}.bak"))) == 1
    assert revision_of(sqlite_settings) == revisions.ids()[-2]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_held_lock_times_out_through_the_cli(settings: Settings, entry: str) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connect(settings) as conn, locking.migration_lock(settings, conn):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        commands_at = revision_of(settings)
        result = migrate(settings, entry, "up", "head", lock_timeout=0.3)
    finally:
        release.set()
        holder.join()
    assert result.exit_code == 7, result.output
    assert "waiting for the migration lock held by another process" in result.output
    assert revision_of(settings) == commands_at


def test_newer_than_code_is_refused_by_every_command(settings: Settings) -> None:
    commands.upgrade(settings)
    with connect(settings) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()
    for args in (["migrate", "up"], ["migrate", "down", "--steps", "1"], ["setup"],
                 ["migrate", "status"]):
        result = cli(settings, *args)
        assert result.exit_code == 5, (args, result.output)
        assert "9999" in result.output
    for verb, target in (("up", "head"), ("down", "-1"), ("down", "base")):
        outcome = migrate(settings, "alembic", verb, target)
        assert outcome.exit_code == 5 and "9999" in outcome.output, (verb, outcome.output)


def test_setup_with_auto_migrate_off(settings: Settings) -> None:
    commands.upgrade(settings, "0006")
    result = cli(settings, "setup", env={"LLM_PROXY_AUTO_MIGRATE": "0"})
    assert result.exit_code == 10, result.output
    assert "llm-proxy-db migrate up" in result.output
    result = cli(settings, "setup", "--lock-timeout", "5")
    assert result.exit_code == 0, result.output
    assert revision_of(settings) == HEAD


def test_db_backup_and_restore(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings)
    seed(sqlite_settings)
    original = rows(sqlite_settings)
    saved = tmp_path / "saved.db"
    result = cli(sqlite_settings, "db", "backup", "--out", str(saved))
    assert result.exit_code == 0 and f"backup: {saved}" in result.output, result.output
    with connect(sqlite_settings) as conn:
        conn.exec_driver_sql("DELETE FROM tokens")
        conn.commit()
    safe = str(tmp_path / "safe")
    result = cli(sqlite_settings, "db", "restore", str(saved), "--backup-dir", safe)
    assert result.exit_code == 0, result.output
    assert "previous database kept as" in result.output
    assert rows(sqlite_settings) == original
    result = cli(sqlite_settings, "db", "restore", str(tmp_path / "missing.db"))
    assert result.exit_code == 8 and "does not exist" in result.output


def test_db_backup_into_the_rotation(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings)
    result = cli(sqlite_settings, "db", "backup", "--backup-dir", str(tmp_path), "--keep-backups=2")
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.bak"))) == 1


@pytest.mark.postgresql
def test_db_backup_of_postgresql_runs_pg_dump(postgres_url, tmp_path: Path) -> None:
    settings = Settings(driver="postgres", database_url=postgres_url)
    skip_without_pg_client(settings)
    commands.upgrade(settings)
    out = tmp_path / "dump.pgc"
    result = cli(settings, "db", "backup", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"PGDMP")
    result = cli(settings, "db", "backup", "--out", str(out))
    assert result.exit_code == 8 and "already exists" in result.output


def test_migrate_rehearse(settings: Settings) -> None:
    skip_without_pg_client(settings)
    commands.upgrade(settings, "0004")
    result = cli(settings, "migrate", "rehearse")
    assert result.exit_code == 0, result.output
    assert "outcome: OK (3 revision(s)" in result.output
    result = cli(settings, "migrate", "rehearse", "--json")
    data = json.loads(result.output)
    assert data["ok"] and [s["revision"] for s in data["steps"]] == ["0005", "0006", "0007"]
    assert revision_of(settings) == "0004"




def test_render_a_failed_rehearsal() -> None:
    result = RehearsalResult("db", "0004", "0007", [StepTiming("0005", "upgrade", 0.5)],
                             failed_revision="0006", error="boom")
    text = render_rehearsal(result)
    assert "0005  ok" in text and "0006  FAILED" in text and "outcome: FAILED: boom" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_shows_the_running_revision_and_elapsed_time() -> None:
    out = _Terminal()
    show = progress_printer(out)
    show(ProgressEvent("apply_start", "0007", "upgrade"))
    time.sleep(0.3)
    show(ProgressEvent("apply_success", "0007", "upgrade", 0.3))
    show(ProgressEvent("lock_wait", "", "", 5.0, "waiting for the migration lock"))
    text = out.getvalue()
    assert "\rupgrading to 0007 ... 0." in text
    assert "upgrading to 0007 done in 0.30s\x1b[K\n" in text
    assert text.endswith("waiting for the migration lock (5s so far)\x1b[K\n")


def test_log_progress_is_plain_lines() -> None:
    out = io.StringIO()
    show = progress_printer(out)
    for event in (
        ProgressEvent("lock_wait", "", "", 0.0, locking.WAITING),
        ProgressEvent("lock_acquired", "", "", 2.5),
        ProgressEvent("backup_done", "0004", "", 0.0, "/data/x.bak"),
        ProgressEvent("apply_failure", "0005", "downgrade", 1.0),
    ):
        show(event)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()
    assert lines[1].endswith("took the migration lock after 2.5s")
    assert lines[2].endswith("backup written and checked: /data/x.bak")
    assert lines[3].endswith("reverting 0005 FAILED in 1.00s")
