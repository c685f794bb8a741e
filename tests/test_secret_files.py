"""``<NAME>_FILE`` for every variable that takes a secret (llm_proxy_db.config.secrets).

Kubernetes and Docker mount secrets as files; the value is the file's content with its
trailing line break removed.  Conflicts and unreadable files are exit 2 with the path named
and the content never shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_proxy_db.cli import fast_path
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.secrets import SECRET_VARIABLES, secret_env
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError

PASSWORD = "s3cret-in-file"
URL = f"postgres://app:{PASSWORD}@db.internal:5432/llm"


def secret(tmp_path: Path, content: str | bytes, mode: int = 0o440) -> Path:
    path = tmp_path / "database-url"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path.chmod(mode)
    return path


@pytest.mark.parametrize("content", [URL, URL + "\n", URL + "\r\n", URL + "\n\n"])
def test_the_file_content_is_the_value_without_its_line_break(tmp_path: Path, content: str) -> None:
    env = {"DB_DRIVER": "postgres", "DATABASE_URL_FILE": str(secret(tmp_path, content))}
    settings = resolve_settings(env=env)
    assert settings.sqlalchemy_url().password == PASSWORD
    assert settings.describe() == "postgresql+psycopg://app:***@db.internal:5432/llm"


def test_every_secret_variable_reads_its_file(tmp_path: Path) -> None:
    """The mechanism is generic: each registered name has a ``_FILE`` twin."""
    assert "DATABASE_URL" in SECRET_VARIABLES
    path = secret(tmp_path, "value\n")
    for name in SECRET_VARIABLES:
        assert secret_env(name, {f"{name}_FILE": str(path)}) == "value"
        assert secret_env(name, {name: "direct"}) == "direct"
        assert secret_env(name, {name: "", f"{name}_FILE": ""}) is None
    with pytest.raises(KeyError):
        secret_env("DB_DRIVER", {})


def refused(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        resolve_settings(env={"DB_DRIVER": "postgres", **env})
    assert error.value.exit_code == 2
    assert PASSWORD not in f"{error.value.message} {error.value.hint}"
    return error.value


def test_both_the_variable_and_its_file_are_refused(tmp_path: Path) -> None:
    error = refused({"DATABASE_URL": URL, "DATABASE_URL_FILE": str(secret(tmp_path, URL))})
    assert error.message == "both DATABASE_URL and DATABASE_URL_FILE are set"


def test_a_missing_or_unreadable_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    error = refused({"DATABASE_URL_FILE": str(missing)})
    assert error.message == f"cannot read DATABASE_URL_FILE {str(missing)!r}: No such file or directory"
    assert "Is a directory" in refused({"DATABASE_URL_FILE": str(tmp_path)}).message


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        (URL, 0o666, "is writable by every user"),
        ("\n", 0o400, "is empty"),
        (b"\xff" + PASSWORD.encode(), 0o400, "is not UTF-8 text"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, content: str | bytes, mode: int, says: str) -> None:
    """Anyone may rewrite a world-writable file (and so choose the database); an empty or
    binary file is a mistake.  A world-readable one is accepted (Kubernetes' default 0644)."""
    path = secret(tmp_path, content, mode)
    assert refused({"DATABASE_URL_FILE": str(path)}).message == f"DATABASE_URL_FILE {str(path)!r} {says}"
    readable = secret(tmp_path, URL, 0o644)
    assert resolve_settings(env={"DB_DRIVER": "postgres", "DATABASE_URL_FILE": str(readable)}).is_sqlite is False


def test_the_cli_reports_a_conflict_in_one_error_line_exit_2(tmp_path: Path, monkeypatch) -> None:
    """Every command refuses it up front (even one that needs no URL), never printing the secret."""
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret(tmp_path, URL)))
    for argv in (["migrate", "status"], ["migrate", "history"], ["setup"]):
        result = CliRunner().invoke(app, ["--database-path", str(tmp_path / "x.db"), *argv])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: both DATABASE_URL and DATABASE_URL_FILE are set\nHint: ")
        assert PASSWORD not in result.output
        assert fast_path.output_at_head(argv) is None


def test_the_cli_reads_the_file_for_a_server(tmp_path: Path, monkeypatch) -> None:
    """An unreadable file through the CLI: exit 2, the path in the message, no traceback."""
    monkeypatch.setenv("DB_DRIVER", "postgres")
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "missing"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["migrate", "status"])
    assert result.exit_code == 2, result.output
    assert f"DATABASE_URL_FILE {str(tmp_path / 'missing')!r}" in result.output


@pytest.mark.postgresql
def test_a_postgresql_database_is_reached_through_the_file(postgres_url, tmp_path: Path, monkeypatch) -> None:
    """The fast path at head reads the URL from the file too."""
    from llm_proxy_db import commands

    url = postgres_url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgres://")
    monkeypatch.setenv("DB_DRIVER", "postgres")
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret(tmp_path, url + "\n")))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    commands.upgrade(resolve_settings())
    answer = fast_path.output_at_head(["migrate", "up"])
    assert answer == "revision: 0007 (nothing to do)\n"
    assert os.environ["DATABASE_URL_FILE"] not in answer
