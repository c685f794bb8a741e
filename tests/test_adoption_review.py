"""Review fixes to adoption: the nearest state, safer force-stamps, orphan rows, status,
rehearsals of unversioned databases and restores of unrecognisable files."""

from __future__ import annotations

import pytest

from llm_proxy_db import adoption, commands, revisions
from llm_proxy_db.database import connect
from llm_proxy_db.errors import SchemaMismatchError
from tests import legacy

# L1 on SQLite, goose 2 (state 0003) on PostgreSQL: shapes with the audit log.
AUDITED = {"sqlite": ("L1", "0002"), "postgresql": ("goose-2", "0003")}


def _audited(dialect: str, tmp_path, request) -> tuple[legacy.Legacy, str]:
    name, state = AUDITED[dialect]
    shape = next(s for s in legacy.shapes(dialect) if s.name == name)
    return shape, state


def _without_audit_index(dialect, tmp_path, request):
    """The audited shape, without its goose table (no hint), minus idx_audit_outcome."""
    shape, state = _audited(dialect, tmp_path, request)
    settings, _ = legacy.prepare(shape, tmp_path, request)
    with connect(settings) as connection:
        connection.exec_driver_sql("DROP INDEX idx_audit_outcome")
        connection.exec_driver_sql("DROP TABLE IF EXISTS goose_db_version")
        connection.commit()
    return settings, state


def test_nearest_state_prefers_a_missing_index_over_an_extra_table(
    dialect, tmp_path, request
) -> None:
    """The refusal names the state the database lacks an index of, and hints at it."""
    settings, state = _without_audit_index(dialect, tmp_path, request)
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert refused.value.nearest_state == state
    assert refused.value.differences == ("missing index idx_audit_outcome on audit_events",)
    assert f"--force-stamp {state}" in (refused.value.hint or "")
    result = commands.adopt(settings, force_stamp=state)  # following the hint works
    assert result.run is not None and result.run.after == revisions.head_revision()


def test_force_stamp_below_existing_tables_is_refused(dialect, tmp_path, request) -> None:
    """Stamping 0001 on a database with the audit log would fail at 0002: refused untouched."""
    settings, _ = _without_audit_index(dialect, tmp_path, request)
    with pytest.raises(SchemaMismatchError, match="already has table.*audit_events") as refused:
        commands.adopt(settings, force_stamp="0001")
    assert refused.value.differences == ("unexpected table audit_events",)
    with connect(settings) as connection:
        assert adoption.needs_adoption(connection)  # still unversioned


def _orphan_token(settings) -> None:
    with connect(settings, foreign_keys=False) as connection:
        connection.exec_driver_sql("INSERT INTO tokens (token, project_id) VALUES ('x', 'ghost')")
        connection.commit()


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_old_orphan_rows_are_refused_before_anything_changes(sqlite_settings, versioned) -> None:
    """An orphan token the service left is not blamed on 0003 nor stamped over: refused."""
    if versioned:
        commands.upgrade(sqlite_settings, "0002")
    else:
        legacy.create(sqlite_settings, next(s for s in legacy.shapes("sqlite") if s.name == "L1"))
    _orphan_token(sqlite_settings)
    before = sqlite_settings.database_path.read_bytes()
    backups = list(sqlite_settings.database_path.parent.glob("*.bak"))
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(sqlite_settings)
    message = refused.value.message
    assert "already has 1 foreign key violation(s) (tokens rowid" in message
    assert "-> projects)" in message and "nothing was changed" in message
    assert refused.value.exit_code == 6
    assert sqlite_settings.database_path.read_bytes() == before
    assert list(sqlite_settings.database_path.parent.glob("*.bak")) == backups  # none taken
    assert commands.status(sqlite_settings).current_revision == ("0002" if versioned else None)
