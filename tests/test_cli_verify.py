"""``llm-proxy migrate verify`` and ``migrate manifest``: one line per failure, exit code 9."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from llm_proxy_db import verify
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.paths import manifest_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.migration import manifest
from tests.chain_fixtures import add_revision, copy_chain, edit, revision_file

runner = CliRunner()


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at a private copy of the scripts (the real ones are never edited)."""
    location = copy_chain(tmp_path)
    monkeypatch.setattr(verify, "script_location", lambda: location)
    return location


def test_verify_passes_on_the_real_chain(dialect: str, request: pytest.FixtureRequest) -> None:
    """Exit 0 and one OK line; the stages go to stderr so logs show progress."""
    args = ["migrate", "verify"]
    if dialect == "postgresql":
        server: URL | None = request.getfixturevalue("postgres_server_url")
        if server is None:
            pytest.skip("no PostgreSQL server")
        args += ["--postgres-url", server.render_as_string(hide_password=False)]
    if dialect == "mysql":
        server = request.getfixturevalue("mysql_server_url")
        if server is None:
            pytest.skip("no MySQL server")
        args += ["--mysql-url", server.render_as_string(hide_password=False)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK the revision chain is sound\n"
    assert f"checking {dialect}: base -> head -> base -> head ..." in result.stderr


def test_verify_prints_each_failure_and_exits_9(chain: Path) -> None:
    """A contributor reads the failing line in CI and knows what to revert."""
    edit(revision_file(chain, "0004"), "def downgrade", "# tweaked\ndef downgrade")
    result = runner.invoke(app, ["migrate", "verify"])
    assert result.exit_code == 9, result.output
    assert result.stdout.splitlines() == [
        "FAIL released revision 0004 (0004_token_cache_hits.py) was edited: its checksum "
        "differs from the manifest; revert it and write a new revision instead"
    ]
    assert "Error: migrate verify found 1 problem(s)" in result.stderr


def test_manifest_check_and_update(chain: Path) -> None:
    """The documented way to register a new revision."""
    add_revision(chain, "0008", "0007", upgrade='op.execute("SELECT 1")', downgrade='op.execute("SELECT 1")')
    result = runner.invoke(app, ["migrate", "manifest"])
    assert result.exit_code == 9, result.output
    assert "FAIL revision 0008 (0008_fixture.py) is not in the manifest" in result.stdout
    result = runner.invoke(app, ["migrate", "manifest", "--update"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{manifest_path(chain)}: added 0008\n"
    result = runner.invoke(app, ["migrate", "manifest"])
    assert (result.exit_code, result.stdout) == (0, "OK the manifest is current\n")


def test_manifest_refuses_force_without_update() -> None:
    """--force alone would silently do nothing."""
    result = runner.invoke(app, ["migrate", "manifest", "--force"])
    assert result.exit_code == 2
    assert "Error: --force only makes sense with --update" in result.stderr


def test_status_warns_about_an_applied_revision_that_changed(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The startup check: a warning by default, exit 9 with LLM_PROXY_STRICT_CHECKSUMS=1."""
    location = copy_chain(tmp_path)
    edit(revision_file(location, "0002"), "def downgrade", "# tweaked\ndef downgrade")
    monkeypatch.setattr(manifest, "manifest_path", lambda: manifest_path(location))
    db = ["--database-path", str(sqlite_settings.database_path)]
    assert runner.invoke(app, [*db, "setup"]).exit_code == 0
    warning = "revision 0002 is applied to this database but 0002_audit_events.py changed"
    result = runner.invoke(app, [*db, "migrate", "status"])
    assert result.exit_code == 0, result.output
    assert f"warning:  {warning}" in result.stdout
    result = runner.invoke(app, [*db, "migrate", "up"])
    assert f"warning: {warning}" in result.stdout
    result = runner.invoke(app, [*db, "migrate", "status"], env={manifest.STRICT_ENV: "1"})
    assert result.exit_code == 9
    assert f"Error: {warning}" in result.stderr
