"""Every bad input of issue 13 gets a documented exit code, one ``Error:`` line and, with
``--json``, exactly one JSON object on stdout.

The command line is run through its real entry point (``fast_path.main``, the
``llm-proxy-db`` script), in process, against real SQLite files.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from llm_proxy_db import commands, failures
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.parsing import env_settings, parse_bool
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import ConfigError
from tests import legacy

VARIABLES = (
    "LLM_PROXY_LOCK_TIMEOUT",
    "LLM_PROXY_KEEP_BACKUPS",
    "LLM_PROXY_AUTO_MIGRATE",
    "LLM_PROXY_STRICT_CHECKSUMS",
    "LLM_PROXY_TABLE_LOCK_TIMEOUT",
    "LLM_PROXY_DEBUG",
    "LLM_PROXY_BACKUP_DIR",
    "DB_DRIVER",
    "DATABASE_URL",
    "DATABASE_PATH",
)


def run(monkeypatch, capsys, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``llm-proxy-db argv`` with only ``env`` set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["llm-proxy-db", *argv])
    code: int | str | None = 0
    try:
        fast_path.main()
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


@pytest.fixture
def at_head(sqlite_settings: Settings) -> list[str]:
    """Global options of a SQLite database at head (the fast path answers there)."""
    commands.upgrade(sqlite_settings)
    return ["--database-path", str(sqlite_settings.database_path)]


@pytest.fixture
def behind(sqlite_settings: Settings) -> list[str]:
    """Global options of a SQLite database with revisions pending."""
    commands.upgrade(sqlite_settings, "0005")
    return ["--database-path", str(sqlite_settings.database_path)]


ENV_CASES = [
    ("LLM_PROXY_LOCK_TIMEOUT", "nan", "out of range"),
    ("LLM_PROXY_LOCK_TIMEOUT", "inf", "out of range"),
    ("LLM_PROXY_LOCK_TIMEOUT", "1e309", "out of range"),
    ("LLM_PROXY_LOCK_TIMEOUT", "-5", "out of range"),
    ("LLM_PROXY_LOCK_TIMEOUT", "soon", "is not a number of seconds"),
    ("LLM_PROXY_KEEP_BACKUPS", "abc", "is not a whole number"),
    ("LLM_PROXY_KEEP_BACKUPS", "0", "out of range"),
    ("LLM_PROXY_AUTO_MIGRATE", "maybe", "is not a boolean"),
    ("LLM_PROXY_STRICT_CHECKSUMS", "sometimes", "is not a boolean"),
    ("LLM_PROXY_TABLE_LOCK_TIMEOUT", "99999999999", "out of range"),
    ("LLM_PROXY_TABLE_LOCK_TIMEOUT", "soon", "is not a duration"),
    ("LLM_PROXY_DEBUG", "please", "is not a boolean"),
]
COMMANDS = [["migrate", "status"], ["setup"], ["migrate", "history"], ["migrate", "up"]]


@pytest.mark.parametrize(("name", "value", "message"), ENV_CASES)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_variable_is_refused_up_front_even_at_head(
    monkeypatch, capsys, at_head, name, value, message, command
) -> None:
    """At head too (the fast path), before anything is read or written: exit 2, named."""
    code, out, err = run(monkeypatch, capsys, [*at_head, *command], {name: value})
    assert code == 2, err
    assert err.splitlines()[0] == f"Error: {name}={value!r} {message}" or err.startswith(f"Error: {name}="), err
    assert message in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize(("name", "value", "message"), ENV_CASES)
def test_a_bad_variable_with_json_prints_one_error_object(monkeypatch, capsys, at_head, name, value, message):
    code, out, err = run(monkeypatch, capsys, [*at_head, "migrate", "status", "--json"], {name: value})
    error = json.loads(out)["error"]
    assert code == error["exit_code"] == 2
    assert name in error["message"] and message in error["message"] and error["hint"]


OPTION_CASES = [
    (["migrate", "up", "--lock-timeout", "nan"], 2, "--lock-timeout"),
    (["migrate", "up", "--lock-timeout", "inf"], 2, "--lock-timeout"),
    (["migrate", "up", "--lock-timeout", "1e309"], 2, "--lock-timeout"),
    (["migrate", "up", "--lock-timeout", "-5"], 2, "--lock-timeout"),
    (["migrate", "up", "--keep-backups", "0"], 2, "--keep-backups"),
    (["db", "backup", "--keep-backups", "-1"], 2, "--keep-backups"),
    (["db", "restore", "x.db", "--lock-timeout", "nan"], 2, "--lock-timeout"),
    (["migrate", "up", "--from", "0001"], 2, "--from only applies with --sql"),
    (["migrate", "down", "--to", "0001", "--from", "0007"], 2, "--from only applies with --sql"),
    (["migrate", "up", "--no-backup", "--backup-dir", "b"], 2, "--no-backup and --backup-dir contradict"),
]


@pytest.mark.parametrize(("argv", "exit_code", "message"), OPTION_CASES)
def test_a_bad_option_is_refused(monkeypatch, capsys, behind, argv, exit_code, message) -> None:
    code, out, err = run(monkeypatch, capsys, [*behind, *argv])
    assert code == exit_code, err
    assert err.startswith("Error: ") and message in err.splitlines()[0] and "Traceback" not in err


@pytest.mark.parametrize("spelling", ["1", "true", "YES", " on ", "True"])
def test_true_spellings(spelling: str) -> None:
    assert parse_bool("X", spelling, False) is True


@pytest.mark.parametrize("spelling", ["0", "false", "NO", "off", "False"])
def test_false_spellings(spelling: str) -> None:
    assert parse_bool("X", spelling, True) is False


def test_auto_migrate_off_is_not_on(monkeypatch, capsys, behind) -> None:
    """The safety switch never fails open: ``no`` switches migration off (exit 10)."""
    code, _, err = run(monkeypatch, capsys, [*behind, "setup"], {"LLM_PROXY_AUTO_MIGRATE": "no"})
    assert code == 10, err


def test_defaults_when_unset() -> None:
    settings = env_settings({})
    assert (settings.auto_migrate, settings.strict_checksums, settings.lock_timeout) == (True, False, 300.0)
    assert (settings.keep_backups, settings.table_lock_timeout) == (5, "1s")


def test_a_damaged_sqlite_file_is_exit_3(monkeypatch, capsys, sqlite_settings: Settings) -> None:
    """A truncated file with a valid header: "damaged", exit 3, a restore hint."""
    commands.upgrade(sqlite_settings)
    path = sqlite_settings.database_path
    assert path is not None
    path.write_bytes(path.read_bytes()[:150])
    for argv in (["migrate", "status"], ["migrate", "status", "--json"], ["setup"]):
        code, out, err = run(monkeypatch, capsys, ["--database-path", str(path), *argv])
        assert code == 3, err
        assert "unexpected" not in err and "Hint: " in err
        if "--json" in argv:
            assert json.loads(out)["error"]["exit_code"] == 3


def test_usage_errors_with_json_are_one_object(monkeypatch, capsys, at_head) -> None:
    code, out, err = run(monkeypatch, capsys, [*at_head, "migrate", "status", "--json", "--bogus"])
    assert code == 2 and "--bogus" in json.loads(out)["error"]["message"]


def test_refused_adoption_dry_run_json_shows_the_refusal(monkeypatch, capsys, tmp_path, request) -> None:
    shape = next(shape for shape in legacy.shapes("sqlite") if shape.name == "L1")
    settings, _ = legacy.prepare(shape, tmp_path, request, "index-missing")
    argv = ["--database-path", str(settings.database_path), "migrate", "adopt", "--dry-run", "--json"]
    code, out, _ = run(monkeypatch, capsys, argv)
    error = json.loads(out)["error"]
    assert code == error["exit_code"] == 6
    assert error["differences"] and error["kind"] == "SchemaMismatchError"


def test_non_ascii_path_under_an_ascii_terminal(monkeypatch, capsys, tmp_path: Path) -> None:
    """``PYTHONIOENCODING=ascii``: the path is escaped, never a traceback."""
    path = tmp_path / "données.db"
    commands.upgrade(Settings(driver="sqlite", database_path=path))
    monkeypatch.setattr("sys.stdout", open(1, "w", encoding="ascii", closefd=False))  # noqa: SIM115
    code, _, err = run(monkeypatch, capsys, ["--database-path", str(path), "setup"])
    assert code == 0, err


KNOWN_FAILURES = [
    (sqlite3.DatabaseError("file is not a database"), 3, "damaged"),
    (sqlite3.DatabaseError("database disk image is malformed"), 3, "damaged"),
    (sqlite3.OperationalError("database is locked"), 7, "write lock"),
    (sqlite3.OperationalError("attempt to write a readonly database"), 3, "cannot write"),
    (psycopg.errors.InsufficientPrivilege("permission denied for table alembic_version"), 3, "privilege"),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), 3, "cancelled"),
    (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), 7, "table lock"),
    (FileNotFoundError(2, "No usable temporary directory found in ['/tmp']"), 2, "temporary directory"),
    (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), 2, "UTF-8"),
]


@pytest.mark.parametrize(("exc", "exit_code", "message"), KNOWN_FAILURES)
def test_known_failures_are_translated(exc: BaseException, exit_code: int, message: str) -> None:
    error = failures.translate(exc)
    assert error is not None and error.exit_code == exit_code and message in error.message and error.hint


def test_an_unknown_failure_stays_unknown() -> None:
    assert failures.translate(RuntimeError("boom")) is None
    assert failures.translate(sqlite3.OperationalError("no such table: x")) is None


def test_no_usable_temp_dir(monkeypatch, capsys, tmp_path: Path) -> None:
    """``migrate status`` of an unversioned database needs a scratch database: TMPDIR named."""
    import tempfile

    legacy_db = tmp_path / "old.db"
    sqlite3.connect(legacy_db).execute("CREATE TABLE projects (id TEXT PRIMARY KEY)").connection.close()
    from llm_proxy_db.adoption import known_states

    monkeypatch.setattr(known_states, "_cache", {})  # derived in a scratch dir unless cached
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(tmp_path / "missing")])
    code, out, err = run(monkeypatch, capsys, ["--database-path", str(legacy_db), "migrate", "status", "--json"])
    assert code == 2, err
    assert "Hint: set TMPDIR" in err and json.loads(out)["error"]["exit_code"] == 2


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        env_settings({"LLM_PROXY_KEEP_BACKUPS": "x"})
    assert issubclass(ConfigError, ValueError)


def test_a_null_token_names_the_real_table_and_the_rows_to_fix(monkeypatch, capsys, sqlite_settings) -> None:
    """SQLite's rebuild table ``_alembic_tmp_tokens`` is never shown; the hint says what to fix."""
    commands.upgrade(sqlite_settings, "0004")
    connection = sqlite3.connect(sqlite_settings.database_path)
    connection.execute("INSERT INTO projects (id, name, openai_api_key) VALUES ('p', 'n', 'k')")
    connection.execute("INSERT INTO tokens (token, project_id) VALUES (NULL, 'p')")
    connection.commit()
    connection.close()
    argv = ["--database-path", str(sqlite_settings.database_path), "migrate", "up", "--no-backup"]
    code, _, err = run(monkeypatch, capsys, argv)
    assert code == 4, err
    assert "NOT NULL constraint failed: tokens.token" in err and "_alembic_tmp_" not in err
    assert "Hint: rows of tokens have no value (NULL) in tokens.token" in err


def test_non_ascii_names_are_shown_as_written() -> None:
    from llm_proxy_db.dialects.resolve import resolve_settings

    settings = resolve_settings(database_url="postgres://usér:pässword@hôst:5432/données")
    assert settings.describe() == "postgresql+psycopg://usér:***@hôst:5432/données"


@pytest.mark.parametrize(
    ("recorded", "message"),
    [("0042", "newer llm-proxy-db release"), ("ae1027a6acf", "another application's Alembic history")],
)
def test_an_unknown_recorded_revision_names_its_likely_owner(
    monkeypatch, capsys, sqlite_settings, recorded, message
) -> None:
    commands.upgrade(sqlite_settings)
    connection = sqlite3.connect(sqlite_settings.database_path)
    connection.execute("UPDATE alembic_version SET version_num = ?", (recorded,))
    connection.commit()
    connection.close()
    argv = ["--database-path", str(sqlite_settings.database_path), "migrate", "status"]
    code, _, err = run(monkeypatch, capsys, argv)
    assert code == 5 and message in err, err


def test_auto_migrate_off_on_an_unversioned_database_says_adoption(monkeypatch, capsys, tmp_path, request) -> None:
    """Not "7 revisions behind head": the detected state, and the adopt command."""
    shape = next(shape for shape in legacy.shapes("sqlite") if shape.name == "L1")
    settings, _ = legacy.prepare(shape, tmp_path, request)
    argv = ["--database-path", str(settings.database_path), "setup"]
    code, _, err = run(monkeypatch, capsys, argv, {"LLM_PROXY_AUTO_MIGRATE": "off"})
    assert code == 10, err
    assert "detected 0002" in err and "migrate adopt" in err and "behind head" not in err


@pytest.mark.postgresql
def test_a_role_without_select_on_alembic_version(monkeypatch, capsys, postgres_url) -> None:
    """A real role lacking the privilege: exit 3 naming the privilege, not "unexpected"."""
    import uuid

    import sqlalchemy as sa

    commands.upgrade(Settings(driver="postgres", database_url=postgres_url))
    role = f"llmproxy_noselect_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(f"REVOKE ALL ON alembic_version FROM {role}")
    try:
        url = postgres_url.set(username=role, password=None, drivername="postgresql")
        argv = ["--database-url", url.render_as_string(hide_password=False), "migrate", "status", "--json"]
        code, out, err = run(monkeypatch, capsys, argv)
        assert code == 3, err
        error = json.loads(out)["error"]
        assert "privilege" in error["message"] and "GRANT" in error["hint"] and "unexpected" not in err
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def test_number_from_env_refuses_non_finite_values() -> None:
    from llm_proxy_db.config.settings import number_from_env

    assert number_from_env("X", float, 1.0, "a number", {}) == 1.0
    assert number_from_env("X", float, 1.0, "a number", {"X": " 2 "}) == 2.0
    for raw in ("nan", "inf", "abc"):
        with pytest.raises(ConfigError, match="X="):
            number_from_env("X", float, 1.0, "a number", {"X": raw})
