"""``llm-proxy-db migrate adopt`` and the adoption lines of ``setup`` and ``migrate status``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llm_proxy_db.cli.app import app
from tests import legacy

runner = CliRunner()

SHAPES = [
    pytest.param("sqlite", "L1", "0002", id="sqlite-L1"),
    pytest.param("postgresql", "goose-1", "goose-1", id="postgresql-goose-1", marks=pytest.mark.postgresql),
]


def invoke(settings, *args: str):
    if settings.is_sqlite:
        options = ["--database-path", str(settings.database_path)]
    else:
        options = ["--db-driver", settings.driver, "--database-url", settings.sqlalchemy_url().render_as_string(False)]
    return runner.invoke(app, [*options, *args], env={"LLM_PROXY_DEBUG": ""})


def _legacy_db(dialect, name, tmp_path, request, damaged=None):
    shape = next(shape for shape in legacy.shapes(dialect) if shape.name == name)
    settings, _ = legacy.prepare(shape, tmp_path, request, damaged)
    return settings


@pytest.mark.parametrize(("dialect", "name", "state"), SHAPES)
def test_dry_run_then_setup_adopts(dialect, name, state, tmp_path, request):
    settings = _legacy_db(dialect, name, tmp_path, request)
    status = invoke(settings, "migrate", "status")
    assert status.exit_code == 0, status.output
    assert f"detected: {state}" in status.output
    dry = invoke(settings, "migrate", "adopt", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"detected: {state}" in dry.output and "dry run: nothing was changed" in dry.output
    assert "  - stamp revision 0002" in dry.output and "  - upgrade to 0007" in dry.output
    if name.startswith("goose"):
        assert "other:    goose_db_version (not ours: listed, never compared)" in dry.output
    setup = invoke(settings, "setup")
    assert setup.exit_code == 0, setup.output
    assert f"revision: unversioned (detected {state}) -> 0002, adopted; 0002 -> 0007" in setup.output
    assert f"adopted {state}: stamped revision 0002" in setup.stderr
    after = invoke(settings, "migrate", "status")
    assert f"adopted:  from {state} at " in after.output and "stamped 0002" in after.output
    assert "current:  0007" in after.output


def test_adopt_json_plan(sqlite_settings, tmp_path, request):
    settings = _legacy_db("sqlite", "goose-1", tmp_path, request)
    result = invoke(settings, "migrate", "adopt", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["detected"]["state"] == "goose-1" and plan["detected"]["goose_version"] == 1
    assert [a["kind"] for a in plan["actions"]][:3] == ["stamp", "record_adoption", "upgrade"]
    adopted = invoke(settings, "migrate", "adopt", "--to", "0004")
    assert adopted.exit_code == 0, adopted.output
    assert "0002 -> 0004" in adopted.output


def test_damaged_database_is_refused_with_the_difference(tmp_path, request):
    settings = _legacy_db("sqlite", "L2-fresh", tmp_path, request, damaged="index-missing")
    for args in (("setup",), ("migrate", "adopt"), ("migrate", "adopt", "--dry-run")):
        result = invoke(settings, *args)
        assert result.exit_code == 6, result.output
        assert "Error: the database has no alembic_version table" in result.stderr
        assert "  - missing index idx_tokens_expires_at on tokens" in result.stderr
        assert "--force-stamp 0003" in result.stderr and "Traceback" not in result.output
    assert "detected: unknown" in invoke(settings, "migrate", "status").output


def test_force_stamp_warns_loudly(tmp_path, request):
    settings = _legacy_db("sqlite", "L2-fresh", tmp_path, request, damaged="index-missing")
    dry = invoke(settings, "migrate", "adopt", "--dry-run", "--force-stamp", "0003")
    assert dry.exit_code == 0, dry.output
    assert "WARNING: FORCED: revision 0003 is recorded without verification" in dry.stderr
    assert "record the adoption from state unknown (FORCED, unverified)" in dry.stdout
    result = invoke(settings, "migrate", "adopt", "--force-stamp", "0003")
    assert result.exit_code == 0, result.output
    assert "WARNING: missing index idx_tokens_expires_at on tokens" in result.stderr
    assert "(FORCED, unverified)" in invoke(settings, "migrate", "status").output


def test_status_of_a_new_database_suggests_setup(sqlite_settings):
    result = invoke(sqlite_settings, "migrate", "status")
    assert result.exit_code == 0, result.output
    assert "detected: empty (no tables yet: run `llm-proxy-db setup`)" in result.output
