"""A restore is logged from the revision it replaced, and keeps the runs made since the backup
(issue 21 item 19).

It was logged as ``base -> REV`` whatever it replaced, and the runs made between the backup
and the restore vanished from ``migrate log`` (the restored database carries the log of the
backup).  Decision: they happened, so they are kept: the restore copies into the restored log
the runs the replaced database recorded after the backup, then logs itself ``REPLACED ->
RESTORED``.  Every dialect, through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from tests.safety_helpers import seed, skip_without_pg_client
from tests.test_cli import db_options


def _cli(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(app, [*db_options(settings), *args], env={"LLM_PROXY_DEBUG": ""})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_restore_logs_what_it_replaced_and_keeps_the_runs_since_the_backup(
    settings: Settings, tmp_path: Path
) -> None:
    skip_without_pg_client(settings)
    commands.upgrade(settings, no_backup=True)
    seed(settings, projects=1, tokens_each=1, events=1)
    backup = _cli(settings, "db", "backup", "--out", str(tmp_path / "b.backup")).strip().removeprefix("backup: ")
    _cli(settings, "migrate", "down", "--steps", "2", "--allow-data-loss", "--backup-dir", str(tmp_path / "auto"))
    _cli(settings, "migrate", "up", "--to", "0006", "--backup-dir", str(tmp_path / "auto"))
    since_backup = json.loads(_cli(settings, "migrate", "log", "--json"))
    force = [] if settings.is_sqlite else ["--force"]
    _cli(settings, "db", "restore", backup, *force, "--backup-dir", str(tmp_path / "auto"))
    log = json.loads(_cli(settings, "migrate", "log", "--json"))
    restore = log[-1]
    assert (restore["action"], restore["from"], restore["to"]) == ("restore", "0006", "0007"), restore
    moves = [(entry["action"], entry["revision"]) for entry in log[:-1]]
    assert moves == [(entry["action"], entry["revision"]) for entry in since_backup]
    assert ("downgrade", "0007") in moves and ("upgrade", "0006") in moves
    assert "3 run(s) recorded after the backup was taken kept" in restore["detail"]
    assert commands.status(settings).current_revision == "0007"


def test_two_like_runs_in_one_second_are_both_kept(sqlite_settings: Settings, tmp_path: Path) -> None:
    """Runs are matched as a multiset: an upgrade identical to one in the backup's log (same
    revisions, same second) is still a run of its own."""
    from llm_proxy_db.database import connect
    from llm_proxy_db.migration import run_log

    commands.upgrade(sqlite_settings, "0006", no_backup=True)
    with connect(sqlite_settings) as connection:
        log = run_log.entries(connection)
        again = log[-1]
        assert run_log.carry_over(connection, [*log, again]) == 1
        connection.commit()
        assert run_log.entries(connection)[-1].revision == again.revision == "0006"
