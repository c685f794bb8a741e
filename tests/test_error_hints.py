"""Every error a user can meet ends with one ``Hint:`` line (issue 21 item 22, as a class).

Two walks close the class: every construction of an error class of :mod:`llm_proxy_db.errors`
in the package passes its own ``hint=`` (found by reading the source, so a new raise without
one fails here), and the CLI's error boundary prints a hint for every exit code even when an
error arrives without one.  ``db restore`` of a missing file, the reported case, runs on every
dialect through the real CLI.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import llm_proxy_db
from llm_proxy_db import errors
from llm_proxy_db.cli.app import FALLBACK_HINTS, app
from tests.test_cli import db_options

PACKAGE = Path(llm_proxy_db.__file__).parent
ERROR_CLASSES = {
    name for name, value in vars(errors).items()
    if inspect.isclass(value) and issubclass(value, errors.LLMProxyDBError)
}
# Constructions whose hint is passed positionally as the second argument count as given.


def _constructions_without_hint() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in ERROR_CLASSES:
                continue
            keywords = {keyword.arg for keyword in node.keywords}
            if "hint" in keywords or None in keywords or len(node.args) >= 2:
                continue
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)[:90]}")
    return found


def test_every_error_raised_in_the_package_names_a_hint() -> None:
    assert len(ERROR_CLASSES) >= 11
    assert _constructions_without_hint() == []


@pytest.mark.parametrize("error_class", sorted(ERROR_CLASSES))
def test_every_error_class_reaches_the_user_with_a_hint(error_class: str) -> None:
    """The boundary's fallback: an error built without a hint (a plugin, a future raise) still
    ends with a ``Hint:`` line specific to its exit code."""
    cls = getattr(errors, error_class)
    code = cls.exit_code
    assert code == 1 or code in FALLBACK_HINTS, f"no fallback hint for exit {code}"


def test_an_error_without_a_hint_still_prints_one(monkeypatch, tmp_path) -> None:
    from llm_proxy_db import commands

    def broken(*_args, **_kwargs):
        raise errors.BackupError("disk on fire")

    monkeypatch.setattr(commands, "status", broken)
    result = CliRunner().invoke(app, ["--database-path", str(tmp_path / "x.db"), "migrate", "status"])
    assert result.exit_code == 8
    lines = result.output.splitlines()
    assert lines[0] == "Error: disk on fire" and lines[1] == f"Hint: {FALLBACK_HINTS[8]}", result.output


def test_restoring_a_missing_file_says_what_to_do(settings, tmp_path) -> None:
    """Issue 21 item 22: ``db restore`` of a missing file printed no ``Hint:`` line."""
    runner = CliRunner()
    assert runner.invoke(app, [*db_options(settings), "setup"]).exit_code == 0
    missing = tmp_path / "no-such-backup.bak"
    result = runner.invoke(app, [*db_options(settings), "db", "restore", str(missing)])
    assert result.exit_code == 8, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Error: backup file {missing} does not exist", result.output
    assert lines[1] == f"Hint: {errors.MISSING_BACKUP_HINT}", result.output
    assert not missing.exists()
