"""``migrate rehearse``: the pending revisions on a throw-away copy; the real database untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.cli.render import render_rehearsal
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, SchemaMismatchError
from llm_proxy_db.migration import revisions
from llm_proxy_db.safety import rehearse
from tests import legacy
from tests.safety_helpers import FAILING, HEAD, revision_of, seed, skip_without_pg_client


def fingerprint(settings: Settings) -> object:
    """The file's bytes for SQLite; revision and rows for PostgreSQL."""
    if settings.is_sqlite:
        return hashlib.sha256(settings.database_path.read_bytes()).hexdigest()
    with connect(settings) as conn:
        tables = sorted(sa.inspect(conn).get_table_names())
        content = {t: sorted(map(str, conn.exec_driver_sql(f"SELECT * FROM {t}"))) for t in tables}
    return revision_of(settings), content


def scratch_databases(settings: Settings) -> list[str]:
    if settings.is_sqlite:
        return [p.name for p in settings.database_path.parent.glob("*rehearsal*")]
    query = "SHOW DATABASES" if settings.is_mysql else "SELECT datname FROM pg_database"
    with connect(settings) as conn:
        names = conn.exec_driver_sql(query).scalars()
        return [name for name in names if "_rehearsal_" in name]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The dialect's empty database; PostgreSQL rehearsals need working pg_dump / pg_restore."""
    skip_without_pg_client(settings)
    return settings


@pytest.fixture
def at_0004(settings: Settings) -> Settings:
    commands.upgrade(settings, "0004", no_backup=True)
    with connect(settings) as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name, openai_api_key) VALUES ('p', 'n', 'k')"))
        conn.commit()
    return settings


def test_rehearse_runs_pending_revisions_on_a_copy_only(at_0004: Settings) -> None:
    before = fingerprint(at_0004)
    events: list = []
    result = rehearse.rehearse(at_0004, progress=events.append)
    assert result.ok and [s.revision for s in result.steps] == ["0005", "0006", "0007"]
    assert result.as_dict()["steps"][0]["revision"] == "0005"
    assert [e.revision for e in events if e.kind == "apply_success"] == ["0005", "0006", "0007"]
    assert fingerprint(at_0004) == before
    assert scratch_databases(at_0004) == []


def test_rehearse_reports_a_failing_revision(settings: Settings) -> None:
    commands.upgrade(settings, no_backup=True)
    seed(settings)
    before = fingerprint(settings)
    result = rehearse.rehearse(settings, version_locations=[FAILING])
    assert not result.ok and result.failed_revision == "x_fail" and result.steps == []
    assert "never_true" in (result.error or "")
    assert fingerprint(settings) == before and revision_of(settings) == HEAD
    assert scratch_databases(settings) == []


def test_rehearse_with_nothing_pending(settings: Settings) -> None:
    commands.upgrade(settings, no_backup=True)
    result = rehearse.rehearse(settings)
    assert result.ok and result.steps == [] and result.before == HEAD


def test_rehearse_at_head_makes_no_copy(settings: Settings, tmp_path: Path) -> None:
    """Nothing pending: no copy at all (docs/cli.md), so the fast path's one read gives the
    same answer; a working directory that does not exist is never even looked at."""
    commands.upgrade(settings, no_backup=True)
    result = rehearse.rehearse(settings, work_dir=tmp_path / "no-such-directory")
    assert result.ok and result.steps == [] and (result.before, result.target) == (HEAD, HEAD)
    assert scratch_databases(settings) == []


def test_rehearse_at_head_still_refuses_old_foreign_key_violations(sqlite_settings: Settings) -> None:
    """What the copy would have been refused for is asked of the database itself, read only."""
    commands.upgrade(sqlite_settings, no_backup=True)
    with connect(sqlite_settings, foreign_keys=False) as conn:
        conn.exec_driver_sql("INSERT INTO tokens (id, token, project_id) VALUES ('i', 'x', 'ghost')")
        conn.commit()
    with pytest.raises(SchemaMismatchError, match="already has 1 foreign key violation"):
        rehearse.rehearse(sqlite_settings)


def test_rehearse_refuses_a_target_below_and_a_missing_file(at_0004: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        rehearse.rehearse(at_0004, "0002")
    with pytest.raises(ConfigError):
        rehearse.rehearse(Settings(driver="sqlite", database_path=tmp_path / "none.db"))


# An unversioned shape per dialect, the known state it is, the revision it is stamped at (MySQL's
# goose file 1 already names the column api_key: its goose 3 is 0004's api_key variant).
UNVERSIONED = {
    "sqlite": ("L1", "0002", "0002"),
    "postgresql": ("goose-3", "0004", "0004"),
    "mysql": ("goose-3", "0004-api_key", "0004"),
}


def _unversioned(dialect: str, tmp_path: Path, request, damaged: str | None = None) -> Settings:
    name, _, _ = UNVERSIONED[dialect]
    shape = next(s for s in legacy.shapes(dialect) if s.name == name)
    settings, _ = legacy.prepare(shape, tmp_path, request, damaged)
    skip_without_pg_client(settings)
    return settings


def test_rehearse_adopts_an_unversioned_database_on_the_copy(dialect, tmp_path, request) -> None:
    """Detected and stamped on the copy as setup would, then the remaining revisions run."""
    settings = _unversioned(dialect, tmp_path, request)
    before = fingerprint(settings)
    result = rehearse.rehearse(settings)
    _, state, stamped = UNVERSIONED[dialect]
    assert result.ok, result.error
    assert (result.adopted, result.stamped) == (state, stamped)
    assert result.as_dict()["adopted"] == state
    assert [s.revision for s in result.steps] == revisions.between(stamped, HEAD)
    assert f"adopted {state}: stamped revision {stamped}" in render_rehearsal(result)
    assert fingerprint(settings) == before and scratch_databases(settings) == []
    if settings.is_sqlite:  # the CLI repro from the review
        path = str(settings.database_path)
        out = CliRunner().invoke(app, ["--database-path", path, "migrate", "rehearse"])
        assert out.exit_code == 0, out.output
        assert "outcome: OK" in out.output and "adopted 0002" in out.output


def test_rehearse_refuses_an_unknown_unversioned_database(dialect, tmp_path, request) -> None:
    """Refused as setup refuses it, with the difference; nothing copied, nothing changed."""
    settings = _unversioned(dialect, tmp_path, request, damaged="index-missing")
    before = fingerprint(settings)
    with pytest.raises(SchemaMismatchError) as refused:
        rehearse.rehearse(settings)
    assert "missing index idx_tokens_expires_at on tokens" in refused.value.differences
    assert fingerprint(settings) == before and scratch_databases(settings) == []


def test_rehearse_refuses_old_foreign_key_violations(tmp_path: Path, request) -> None:
    """An orphan row would make the real run refuse: the rehearsal says so, untouched."""
    settings = _unversioned("sqlite", tmp_path, request)
    with connect(settings, foreign_keys=False) as conn:
        conn.exec_driver_sql("INSERT INTO tokens (token, project_id) VALUES ('x', 'ghost')")
        conn.commit()
    before = fingerprint(settings)
    with pytest.raises(SchemaMismatchError, match="already has 1 foreign key violation"):
        rehearse.rehearse(settings)
    assert fingerprint(settings) == before and scratch_databases(settings) == []
