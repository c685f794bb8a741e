"""The ``llm-proxy`` command line: thin wiring, readable errors, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llm_proxy_db.cli.app import app

runner = CliRunner()


def db_options(settings) -> list[str]:
    """The global options that point the CLI at the test database."""
    if settings.is_sqlite:
        return ["--database-path", str(settings.database_path)]
    return ["--db-driver", settings.driver, "--database-url", settings.sqlalchemy_url().render_as_string(False)]


def invoke(settings, *args: str):
    result = runner.invoke(app, [*db_options(settings), *args], env={"LLM_PROXY_DEBUG": ""})
    return result


def test_setup_brings_a_new_database_to_head_and_reports(settings):
    result = invoke(settings, "setup")
    assert result.exit_code == 0, result.output
    assert "base -> 0007" in result.output
    again = invoke(settings, "setup")
    assert again.exit_code == 0, again.output
    assert "0007 (nothing to do)" in again.output


def test_status_json_has_the_documented_keys(settings):
    invoke(settings, "migrate", "up", "--to", "0004")
    result = invoke(settings, "migrate", "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["current_revision"] == "0004"
    assert status["head_revision"] == "0007"
    assert status["pending"] == ["0005", "0006", "0007"]
    assert status["up_to_date"] is False


def test_up_down_and_text_status(settings):
    assert invoke(settings, "migrate", "up").exit_code == 0
    down = invoke(settings, "migrate", "down", "--steps", "2")
    assert down.exit_code == 0, down.output
    assert "0007 -> 0005" in down.output
    status = invoke(settings, "migrate", "status")
    assert "current:  0005" in status.output and "pending:  0006, 0007" in status.output
    assert invoke(settings, "migrate", "down", "--to", "base").exit_code == 0
    assert "base (no revision applied)" in invoke(settings, "migrate", "status").output


def test_history_text_and_json():
    text = runner.invoke(app, ["migrate", "history"])
    assert text.exit_code == 0 and text.output.splitlines()[0].startswith("0001")
    data = json.loads(runner.invoke(app, ["migrate", "history", "--json"]).stdout)
    assert [item["id"] for item in data][-1] == "0007"


def test_sql_mode_prints_sql_and_changes_nothing(sqlite_settings):
    result = invoke(sqlite_settings, "migrate", "up", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE projects" in result.stdout
    assert not sqlite_settings.database_path.exists()
    down = invoke(sqlite_settings, "migrate", "down", "--to", "0005", "--sql")
    assert "Running downgrade 0006 -> 0005" in down.stdout
    assert invoke(sqlite_settings, "migrate", "down", "--steps", "1", "--sql").exit_code == 2


@pytest.mark.parametrize(
    ("options", "stop"),
    [
        (["--database-path", "x.db"], ".bail on"),
        (["--db-driver", "postgres", "--database-url", "postgres://u@h/db"], "\\set ON_ERROR_STOP on"),
    ],
    ids=["sqlite", "postgresql"],
)
def test_sql_scripts_tell_the_client_to_stop_at_the_first_error(options: list[str], stop: str) -> None:
    """Some statements commit on their own: a client that went on after a failure could run the
    version update of a revision it did not finish (psql and the sqlite3 shell go on by default)."""
    for args in (["migrate", "up", "--sql"], ["migrate", "down", "--to", "0005", "--sql"]):
        result = runner.invoke(app, [*options, *args], env={"LLM_PROXY_DEBUG": ""})
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[:2] == [result.stdout.splitlines()[0], stop]
        assert result.stdout.startswith("-- for ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--db-driver", "oracle", "migrate", "status"], 2, "unknown database driver"),
        (["--database-url", "postgres://u:topsecret@127.0.0.1:1/db", "migrate", "status"], 3, "u:***@"),
        (["migrate", "down"], 2, "exactly one of --steps"),
        (["migrate", "up", "--to", "nope"], 5, "unknown revision"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, args, code, message):
    where = [] if "--database-url" in args else ["--database-path", str(tmp_path / "x.db")]
    result = runner.invoke(app, [*where, *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert "topsecret" not in result.output


def test_unexpected_errors_are_not_tracebacks(tmp_path, monkeypatch):
    from llm_proxy_db import commands

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom postgres://u:pw@h/db")

    monkeypatch.setattr(commands, "status", explode)
    monkeypatch.delenv("LLM_PROXY_DEBUG", raising=False)
    result = runner.invoke(app, ["--database-path", str(tmp_path / "x.db"), "migrate", "status"])
    assert result.exit_code == 1
    assert "unexpected RuntimeError: boom postgres://u:***@h/db" in result.output
    assert "pw" not in result.output.replace("postgres", "")


def test_the_installed_entry_point_runs_from_another_directory(tmp_path):
    """``python -m llm_proxy_db`` (what the ``llm-proxy`` script calls) works outside the repo."""
    env = {**os.environ, "DATABASE_PATH": str(tmp_path / "d" / "x.db"), "DB_DRIVER": "sqlite"}
    done = subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "setup"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "base -> 0007" in done.stdout
    assert "upgrading to 0001" in done.stderr


def test_a_commands_own_exit_code_is_not_an_unexpected_error():
    import typer

    from llm_proxy_db.cli.app import handles_errors

    @handles_errors
    def command() -> None:
        raise typer.Exit(4)

    with pytest.raises(typer.Exit) as excinfo:
        command()
    assert excinfo.value.exit_code == 4
