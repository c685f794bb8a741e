"""Every command's ``--json`` output, and every JSON log line, validates against its published schema."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from llm_proxy_db import commands
from llm_proxy_db.cli import schemas
from llm_proxy_db.cli.json_log import JsonLinesProgress, log_message
from llm_proxy_db.config.paths import manifest_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.events import ProgressEvent
from tests.safety_helpers import seed, skip_without_pg_client
from tests.test_cli_safety import cli

FORMATS = jsonschema.FormatChecker()


def valid(name: str, value: object) -> None:
    """``value`` matches schema ``name`` (the schema itself checked first)."""
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(value)


def run_json(settings: Settings, command: str, *args: str, exit_code: int = 0, env=None) -> dict | list:
    """Run ``command`` with ``--json``; its stdout must be one JSON value of the command's schema."""
    result = cli(settings, *command.split(), *args, "--json", env=env)
    assert result.exit_code == exit_code, result.output
    value = json.loads(result.stdout)
    key = command + "".join(f" {flag}" for flag in ("--sql", "--dry-run", "--update") if flag in args)
    valid(schemas.ERROR_SCHEMA if exit_code and "error" in value else schemas.COMMAND_SCHEMAS[key], value)
    return value


def test_every_schema_is_a_valid_schema_and_every_command_has_one() -> None:
    from typer.main import get_command

    from llm_proxy_db.cli.app import app

    for file in schemas.SCHEMA_DIR.glob("*.schema.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(file.read_text()))
    group = get_command(app)
    names = {
        f"{name} {sub}".strip()
        for name, command in group.commands.items()  # type: ignore[attr-defined]
        for sub in (getattr(command, "commands", None) or {"": None})
    }
    assert names <= set(schemas.COMMAND_SCHEMAS)
    for name in names:
        group_name, _, sub = name.partition(" ")
        command = group.commands[group_name]  # type: ignore[attr-defined]
        leaf = command.commands[sub] if sub else command
        assert "--json" in {opt for param in leaf.params for opt in param.opts}, name


def test_every_command_on_every_dialect(settings: Settings, tmp_path: Path) -> None:
    skip_without_pg_client(settings)
    assert run_json(settings, "migrate status")["current_revision"] is None
    assert run_json(settings, "setup")["after"] == "0007"
    seed(settings, projects=1, tokens_each=1, events=1)
    assert run_json(settings, "setup")["action"] == "up_to_date"
    down = run_json(settings, "migrate down", "--steps", "1", "--backup-dir", str(tmp_path / "b"))
    assert down["applied"] == ["0007"]
    assert run_json(settings, "migrate adopt", "--dry-run")["target"] == "0007"
    assert run_json(settings, "migrate rehearse")["ok"] is True
    assert run_json(settings, "migrate up", "--dry-run")["target_revision"] == "0007"
    assert run_json(settings, "migrate up", "--no-backup")["after"] == "0007"
    assert run_json(settings, "migrate adopt", "--no-backup")["run"]["after"] == "0007"
    assert run_json(settings, "migrate up", "--sql", "--from", "0006")["sql"].count("0007") >= 1
    assert "DROP" in run_json(settings, "migrate down", "--sql", "--to", "0005")["sql"]
    assert [rev["id"] for rev in run_json(settings, "migrate history")][-1] == "0007"
    assert [entry["action"] for entry in run_json(settings, "migrate log")][-2:] == ["downgrade", "upgrade"]
    assert run_json(settings, "migrate drift")["drift"] is False
    out = tmp_path / ("saved.db" if settings.is_sqlite else "saved.dump")
    assert run_json(settings, "db backup", "--out", str(out))["backup"] == str(out)
    restored = run_json(settings, "db restore", str(out), "--force", "--backup-dir", str(tmp_path / "safe"))
    assert restored["revision"] == "0007"


def test_errors_of_every_command_are_the_error_object(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        connection.commit()
    for command in ("setup", "migrate up", "migrate status", "migrate history", "migrate adopt",
                    "migrate rehearse", "migrate drift"):
        assert run_json(sqlite_settings, command, exit_code=5)["error"]["exit_code"] == 5
    assert run_json(sqlite_settings, "migrate down", "--steps", "1", exit_code=5)["error"]["kind"]
    assert run_json(sqlite_settings, "migrate log", "--limit", "0", exit_code=2)["error"]["exit_code"] == 2
    missing = str(tmp_path / "missing.db")
    assert run_json(sqlite_settings, "db restore", missing, exit_code=8)["error"]["exit_code"] == 8
    assert run_json(sqlite_settings, "db backup", "--keep-backups", "0", exit_code=2)["error"]
    done = subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "--database-path", str(sqlite_settings.database_path),
         "migrate", "status", "--no-such-option", "--json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    usage = json.loads(done.stdout)
    valid(schemas.ERROR_SCHEMA, usage)
    assert usage["error"]["kind"] == "ConfigError"
    done = subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "migrate", "status", "--no-such-option"],
        capture_output=True, text=True, check=False, env={**os.environ, "LLM_PROXY_LOG_FORMAT": "json"},
    )
    line = json.loads(done.stderr)
    valid(schemas.LOG_LINE_SCHEMA, line)
    assert done.returncode == 2 == line["exit_code"] and "--no-such-option" in line["message"]


def test_drift_and_verify_and_manifest(sqlite_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql("DROP INDEX idx_audit_outcome")
        connection.exec_driver_sql("CREATE INDEX ops_x ON tokens (last_used_at)")
        connection.commit()
    drift = run_json(sqlite_settings, "migrate drift", exit_code=9)
    assert drift["drift"] is True
    assert drift["statements"] == ["CREATE INDEX idx_audit_outcome ON audit_events (outcome);"]
    other = tmp_path / "other.db"
    commands.upgrade(Settings(driver="sqlite", database_path=other), no_backup=True)
    against = run_json(sqlite_settings, "migrate drift", "--against-path", str(other), exit_code=9)
    assert against["reference"]["kind"] == "database"
    assert run_json(sqlite_settings, "migrate manifest")["ok"] is True
    before = manifest_path().read_bytes()
    assert run_json(sqlite_settings, "migrate manifest", "--update")["added"] == []
    assert manifest_path().read_bytes() == before
    assert run_json(sqlite_settings, "migrate verify")["problems"] == []


def test_json_log_lines(sqlite_settings: Settings) -> None:
    """LLM_PROXY_LOG_FORMAT=json: every stderr line of a run is one object of log-line.schema.json."""
    commands.upgrade(sqlite_settings, "0005", no_backup=True)
    env = {"LLM_PROXY_LOG_FORMAT": "json"}
    result = cli(sqlite_settings, "migrate", "up", "--json", env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == [
        "backup_done", "apply_start", "apply_success", "apply_start", "apply_success"
    ]
    for line in lines:
        valid(schemas.LOG_LINE_SCHEMA, line)
    assert lines[2]["revision"] == "0006" and lines[2]["phase"] == "apply" and lines[2]["elapsed"] >= 0
    refused = cli(sqlite_settings, "migrate", "down", "--to", "9999", env=env)
    error = json.loads(refused.stderr.splitlines()[-1])
    valid(schemas.LOG_LINE_SCHEMA, error)
    assert error["level"] == "error" and error["exit_code"] == refused.exit_code == 5
    bad = cli(sqlite_settings, "migrate", "status", env={"LLM_PROXY_LOG_FORMAT": "xml"})
    assert bad.exit_code == 2 and "LLM_PROXY_LOG_FORMAT='xml' is not a log format" in bad.output


def test_backfill_lines_carry_rows_rate_and_are_throttled() -> None:
    out = io.StringIO()
    show = JsonLinesProgress(out)
    show(ProgressEvent("backfill", "0005", "upgrade", 2.0, "rows", 500, 1000))
    show(ProgressEvent("backfill", "0005", "upgrade", 2.5, "rows", 600, 1000))  # within 5 s: dropped
    show(ProgressEvent("backfill", "0005", "upgrade", 4.0, "rows", 1000, 1000))
    show(ProgressEvent("lock_retry", "0005", "upgrade", 4.5, "lock not granted"))
    log_message("warning", "a warning", out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["rows"], line["total"]) for line in lines[:2]] == [(500, 1000), (1000, 1000)]
    assert lines[0]["rate"] == 250.0 and lines[2]["level"] == "warning" and lines[2]["phase"] == "retry"
    assert lines[3]["message"] == "a warning" and lines[3]["event"] == "message"
    for line in lines:
        valid(schemas.LOG_LINE_SCHEMA, line)


@pytest.mark.parametrize("entry", ["setup", "migrate up"])
def test_text_stays_the_default(sqlite_settings: Settings, entry: str) -> None:
    result = cli(sqlite_settings, *entry.split())
    assert result.exit_code == 0 and not result.stdout.lstrip().startswith("{"), result.output
