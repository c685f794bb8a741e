"""``llm-proxy-db migrate status`` and ``setup`` at head, answered before Typer is involved.

The fast path must print exactly what the full CLI prints, and step aside for everything else.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli import app as cli
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.settings import Settings

COMMANDS = [
    ["migrate", "status", "--json"], ["migrate", "status"], ["setup"], ["setup", "--json"], ["migrate", "up"],
    ["migrate", "up", "--json"],
]


def _same_output(fast: str | None, full: str) -> bool:
    """Equal text; for JSON, equal but for the lock wait (``migrate up`` takes the lock and times
    its wait, a few milliseconds; the fast path at head takes no lock: 0.0)."""
    if fast is None or not fast.startswith("{"):
        return fast == full
    fast_data, full_data = json.loads(fast), json.loads(full)
    assert fast_data.pop("lock_wait_seconds", 0.0) == 0.0 and full_data.pop("lock_wait_seconds", 0.0) < 5
    return fast_data == full_data and fast.splitlines()[:3] == full.splitlines()[:3]


def _globals(settings: Settings, form: str) -> list[str]:
    path = str(settings.database_path)
    if form == "separate":
        return ["--db-driver", "sqlite", "--database-path", path]
    return ["--db-driver=sqlite", f"--database-path={path}"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_fast_output_equals_the_full_cli(sqlite_settings: Settings, command, form) -> None:
    """At head the fast path answers, with the full CLI's exact text."""
    commands.upgrade(sqlite_settings)
    argv = _globals(sqlite_settings, form) + command
    full = CliRunner().invoke(cli.app, argv)
    assert full.exit_code == 0, full.output
    assert _same_output(fast_path.output_at_head(argv), full.stdout)


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "down", "--steps", "1"],
        ["migrate", "status", "--help"],
        ["--verbose", "migrate", "status"],
        ["--database-path"],
        ["migrate", "up", "--to", "0006"],
        ["migrate", "up", "--sql"],
        ["--version"],
        [],
    ],
)
def test_anything_else_goes_to_the_full_cli(sqlite_settings: Settings, argv) -> None:
    """Other commands and options are never handled here."""
    commands.upgrade(sqlite_settings)
    assert fast_path.output_at_head(["--database-path", str(sqlite_settings.database_path), *argv]) is None


def test_not_at_head_goes_to_the_full_cli(sqlite_settings: Settings) -> None:
    """A database with pending revisions, or none at all, is the full CLI's business."""
    argv = ["--database-path", str(sqlite_settings.database_path), "migrate", "status"]
    assert fast_path.output_at_head(argv) is None
    commands.upgrade(sqlite_settings, "0006")
    assert fast_path.output_at_head(argv) is None
    assert fast_path.output_at_head(["--db-driver", "mysql", "setup"]) is None


def test_main_prints_the_fast_answer(sqlite_settings: Settings, monkeypatch, capsys) -> None:
    """The entry point writes the answer and returns without running Typer."""
    commands.upgrade(sqlite_settings)
    argv = ["llm-proxy", "--database-path", str(sqlite_settings.database_path), "setup"]
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.setattr(cli, "app", lambda: pytest.fail("Typer ran"))
    fast_path.main()
    assert capsys.readouterr().out.endswith("revision: 0007 (nothing to do)\n")


def test_main_falls_back_to_the_full_cli(sqlite_settings: Settings, monkeypatch) -> None:
    """Anything the fast path does not answer runs the Typer application."""
    ran = []
    monkeypatch.setattr("sys.argv", ["llm-proxy", "--database-path", str(sqlite_settings.database_path), "setup"])
    monkeypatch.setattr(cli, "app", lambda **kwargs: ran.append(True))
    with pytest.raises(SystemExit) as exited:
        fast_path.main()
    assert ran == [True] and exited.value.code == 0


def test_setup_at_head_runs_nothing(settings: Settings) -> None:
    """The library's setup at head is one read and an empty run."""
    commands.upgrade(settings)
    result = commands.setup(settings)
    assert (result.before, result.after, result.steps) == ("0007", "0007", [])


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u@127.0.0.1:1/db",
        "postgresql://u:secret@127.0.0.1:1/db",
        "postgresql+psycopg://user.name:p-w@localhost:1/my_db",
        "postgres://u:@127.0.0.1:1/db",
        "postgres://u@127.0.0.1/db",
    ],
)
def test_plain_postgres_urls_are_described_as_settings_does(url: str) -> None:
    """Without SQLAlchemy, the plain URL forms render exactly like Settings.describe()."""
    from llm_proxy_db.dialects.resolve import resolve_settings
    from llm_proxy_db.quick_status import postgres_url_at_head

    answer = postgres_url_at_head(url)
    assert answer is not None
    assert answer == (False, resolve_settings(database_url=url, env={}).describe())


@pytest.mark.parametrize(
    "url", ["postgres://u@h:5432/db?sslmode=disable", "postgres://u:p%40ss@h/db", "postgres://h/db"]
)
def test_other_postgres_urls_take_the_settings_route(url: str) -> None:
    """Queries, escapes and missing users are left to SQLAlchemy's parser."""
    from llm_proxy_db.quick_status import postgres_url_at_head

    assert postgres_url_at_head(url) is None


@pytest.mark.postgresql
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_postgres_fast_output_equals_the_full_cli(postgres_url, scheme: str, command) -> None:
    """At head on PostgreSQL the fast path answers with the full CLI's exact text."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings)
    url = postgres_url.set(drivername=scheme).render_as_string(hide_password=False)
    argv = ["--database-url", url, *command]
    full = CliRunner().invoke(cli.app, argv)
    assert full.exit_code == 0, full.output
    assert _same_output(fast_path.output_at_head(argv), full.stdout)
