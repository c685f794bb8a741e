"""The server drivers are extras: a database whose driver is missing is exit 2 naming the extra.

The real proof is tests/test_deployment.py (a SQLite-only install with no driver at all);
here the same refusal is checked in-process, every entry point that opens a server database.
"""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from llm_proxy_db.cli.app import app
from llm_proxy_db.dialects import dialect_for, drivers
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError

URLS = {
    "postgres": ("postgres://u:pw-123@127.0.0.1:1/db", "psycopg"),
    "mysql": ("u:pw-123@tcp(127.0.0.1:1)/db", "pymysql"),
}


@pytest.fixture
def without(monkeypatch):  # type: ignore[no-untyped-def]
    """Make ``find_spec`` say the named driver modules are not installed."""

    def hide(*modules: str) -> None:
        real = importlib.util.find_spec
        monkeypatch.setattr(drivers.importlib.util, "find_spec",
                            lambda name, *a: None if name in modules else real(name, *a))

    return hide


@pytest.mark.parametrize("driver", sorted(URLS))
def test_every_entry_point_refuses_with_the_extra(driver: str, without) -> None:  # type: ignore[no-untyped-def]
    url, module = URLS[driver]
    without(module)
    settings = resolve_settings(driver, database_url=url, env={})
    dialect = dialect_for(settings)
    calls = [lambda: dialect.create_engine(settings), lambda: dialect.read_versions(settings, True),
             lambda: dialect.scratch_database(settings.sqlalchemy_url())]
    for call in calls:
        with pytest.raises(ConfigError) as error:
            call()
        assert error.value.exit_code == 2
        assert f"pip install 'llm-proxy-db[{driver}]'" in (error.value.hint or "")


def test_the_cli_says_which_extra_to_install(without) -> None:  # type: ignore[no-untyped-def]
    without("psycopg")
    result = CliRunner().invoke(app, ["--database-url", URLS["postgres"][0], "migrate", "history"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: PostgreSQL needs the psycopg driver, which is not installed\n")
    assert "llm-proxy-db[postgres]" in result.output and "pw-123" not in result.output


def test_an_installed_driver_passes() -> None:
    drivers.require_driver("sqlite3", "SQLite", "none")
