"""``migrate up --dry-run`` prints the plan and changes nothing; ``migrate up --sql`` starts at
the database's current revision when it can read it, and says so (issue 22)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration.version_table import current_revision
from tests.test_cli import db_options


def _invoke(settings: Settings, *args: str):
    return CliRunner().invoke(app, [*db_options(settings), *args], env={"LLM_PROXY_DEBUG": ""})


def _snapshot(settings: Settings, folder: Path) -> tuple[object, ...]:
    """The tables, the revision, the run log's rows and the files beside the database."""
    with connect(settings, create=False) as connection:
        inspector = sa.inspect(connection)
        tables = sorted(inspector.get_table_names())
        columns = {table: sorted(c["name"] for c in inspector.get_columns(table)) for table in tables}
        logged = connection.exec_driver_sql("SELECT count(*) FROM llm_proxy_run_log").scalar()
        revision = current_revision(connection)
    return tables, columns, logged, revision, sorted(path.name for path in folder.rglob("*"))


def test_dry_run_prints_the_plan_and_changes_nothing(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    commands.upgrade(settings, "0004", no_backup=True)
    with connect(settings) as connection:
        connection.execute(sa.text("INSERT INTO projects (id, name, openai_api_key) VALUES ('p1', 'one', 'k')"))
        connection.execute(
            sa.text("INSERT INTO tokens (token, project_id) VALUES (:token, 'p1')"),
            [{"token": f"tok-{n}"} for n in range(6)],
        )
        connection.commit()
    folder = settings.database_path.parent if settings.is_sqlite else tmp_path
    before = _snapshot(settings, folder)
    result = _invoke(settings, "migrate", "up", "--dry-run", "--backup-dir", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "current:  0004" in text and "target:   0007" in text
    assert [line.split()[0] for line in text.splitlines() if line.startswith("  0")] == ["0005", "0006", "0007"]
    assert "rewrites: 6 row(s) of tokens" in text and "locks:" in text and "expected:" in text
    assert "dry run: nothing was changed" in text and "backup:" in text
    if settings.is_sqlite:
        assert f"a checked copy of the database into {tmp_path / 'b'}" in text
    assert _snapshot(settings, folder) == before
    assert not (tmp_path / "b").exists()


def test_dry_run_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "data" / "llm-proxy.db"
    result = CliRunner().invoke(app, ["--database-path", str(database), "migrate", "up", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "does not exist yet" in result.stdout and "0001" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_dry_run_at_head_has_nothing_to_do(sqlite_settings: Settings) -> None:
    commands.upgrade(sqlite_settings)
    result = _invoke(sqlite_settings, "migrate", "up", "--dry-run")
    assert result.exit_code == 0 and "plan:     nothing to do" in result.stdout


def test_sql_starts_at_the_current_revision_and_says_so(settings: Settings) -> None:
    commands.upgrade(settings, "0004", no_backup=True)
    result = _invoke(settings, "migrate", "up", "--sql")
    assert result.exit_code == 0, result.output
    assert "the database is at revision 0004: the script starts there" in result.stderr
    assert "0004 -> 0005" in result.stdout and "-> 0001" not in result.stdout
    explicit = _invoke(settings, "migrate", "up", "--sql", "--from", "base", "--to", "0002")
    assert "-> 0001" in explicit.stdout and "starts there" not in explicit.stderr


def test_sql_of_a_missing_file_starts_at_base_and_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    result = CliRunner().invoke(app, ["--database-path", str(database), "migrate", "up", "--sql"])
    assert result.exit_code == 0, result.output
    assert "does not exist yet: the script starts at base" in result.stderr
    assert "-> 0001" in result.stdout and list(tmp_path.iterdir()) == []


def test_sql_and_dry_run_contradict(sqlite_settings: Settings) -> None:
    result = _invoke(sqlite_settings, "migrate", "up", "--sql", "--dry-run")
    assert result.exit_code == 2 and "contradict" in result.output
