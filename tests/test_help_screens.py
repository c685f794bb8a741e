"""Help screens and start-up: flags shown as flags, the program named llm-proxy-db, --version,
and ``--help`` without Alembic, SQLAlchemy or rich (what makes it start fast; bench/ times it).

Typer 0.29's rich renderer prints every flag with a type (``--json <bool>``, ``--help <bool>``);
the command line uses Click's plain renderer instead, which reads the same with every Typer
version, and constraints.txt pins the versions the project was tested with.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import llm_proxy_db
from llm_proxy_db.cli.app import app
from llm_proxy_db.cli.fast_path import main as fast_main

ROOT = Path(__file__).resolve().parent.parent
SCREENS = [[], ["migrate"], ["db"], ["setup"], ["migrate", "status"], ["migrate", "up"], ["migrate", "down"],
           ["migrate", "adopt"], ["migrate", "rehearse"], ["db", "backup"], ["db", "restore"]]


@pytest.mark.parametrize("path", SCREENS, ids=lambda path: " ".join(path) or "top")
def test_flags_are_shown_as_flags(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "  --help  " in result.output.replace("--help              ", "--help  ")
    assert "╭" not in result.output, "plain help, not rich panels"


@pytest.mark.parametrize("script", ["llm-proxy-db", "llm-proxy"])
def test_the_installed_script_shows_migrate_status_help(script: str) -> None:
    """``llm-proxy-db migrate status --help``, as an operator types it; the alias names the
    program the same way."""
    path = Path(sys.executable).parent / script
    done = subprocess.run([str(path), "migrate", "status", "--help"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("Usage: llm-proxy-db migrate status [OPTIONS]\n")
    assert "  --json  Print JSON instead of text.\n" in done.stdout
    assert "  --help  Show this message and exit.\n" in done.stdout


def test_version_comes_from_the_package_metadata(monkeypatch, capsys) -> None:
    """``--version`` on the fast path and through Typer (after global options) say the same."""
    (version,) = re.findall(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    project = {"version": version}
    assert llm_proxy_db.__version__ == project["version"]
    monkeypatch.setattr("sys.argv", ["llm-proxy-db", "--version"])
    fast_main()
    assert capsys.readouterr().out == f"llm-proxy-db {project['version']}\n"
    result = CliRunner().invoke(app, ["--database-path", "x.db", "--version"])
    assert (result.exit_code, result.output) == (0, f"llm-proxy-db {project['version']}\n")


def test_version_outside_an_installed_distribution(monkeypatch) -> None:
    from importlib import metadata

    from llm_proxy_db.cli.version import version_line

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert version_line() == f"llm-proxy-db {llm_proxy_db.__version__}\n"


def test_the_command_line_imports_no_heavy_module_until_a_command_runs() -> None:
    """Loading the Typer application (what --help needs) leaves Alembic, SQLAlchemy, the
    drivers and rich unloaded; they load when a command body first uses the library."""
    code = (
        "import sys; from llm_proxy_db.cli import app; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'sqlalchemy', 'psycopg', 'pymysql', "
        "'rich'}); print(heavy); app.commands.history; "
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_a_lazy_module_already_loaded_is_the_module_itself() -> None:
    from llm_proxy_db import errors
    from llm_proxy_db.cli.lazy import lazy_module

    assert lazy_module("llm_proxy_db.errors") is errors
    with pytest.raises(ModuleNotFoundError):
        lazy_module("llm_proxy_db.no_such_module")


def _help_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_help_screens", ROOT / "scripts" / "update_help_screens.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_help_screens_are_typers() -> None:
    """Every stored screen is what the full CLI's process prints now (run
    ``python scripts/update_help_screens.py`` after changing the command line or Typer)."""
    from llm_proxy_db.cli import help_screens

    script = _help_script()
    assert script.screens() == help_screens.SCREENS
    assert script.render(help_screens.SCREENS) == (ROOT / "llm_proxy_db" / "cli" / "help_screens.py").read_text()


@pytest.mark.parametrize(
    ("argv", "columns", "answered"),
    [
        (["migrate", "status", "--help"], "80", True),
        (["--help"], "200", True),
        (["migrate", "status", "--help"], "79", False),  # Click wraps narrower: Typer renders it
        (["--database-path", "x.db", "migrate", "--help"], "80", False),
        (["migrate", "status", "--json", "--help"], "80", False),
        (["migrate", "nosuch", "--help"], "80", False),
        (["migrate", "status"], "80", False),
    ],
)
def test_stored_screens_only_where_they_are_exact(monkeypatch, argv, columns, answered) -> None:
    from llm_proxy_db.cli import fast_path

    monkeypatch.setenv("COLUMNS", columns)
    assert (fast_path.help_screen(argv) is not None) is answered
