"""Review fixes to adoption: the nearest state, safer force-stamps, orphan rows, status,
rehearsals of unversioned databases and restores of unrecognisable files."""

from __future__ import annotations

import pytest

from llm_proxy_db import commands
from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.cli import render
from llm_proxy_db.database import connect
from llm_proxy_db.errors import SchemaMismatchError
from llm_proxy_db.migration import revisions
from tests import legacy

# Shapes with the audit log, their known state and the revision it is stamped at: L1 on SQLite,
# goose 2 on PostgreSQL and on MySQL (whose goose file 1 already names the column api_key).
AUDITED = {
    "sqlite": ("L1", "0002", "0002"),
    "postgresql": ("goose-2", "0003", "0003"),
    "mysql": ("goose-2", "0003-api_key", "0003"),
}


def _audited(dialect: str, tmp_path, request) -> tuple[legacy.Legacy, str]:
    name, state, _stamp = AUDITED[dialect]
    shape = next(s for s in legacy.shapes(dialect) if s.name == name)
    return shape, state


def _without_audit_index(dialect, tmp_path, request):
    """The audited shape, without its goose table (no hint), minus idx_audit_outcome."""
    shape, state = _audited(dialect, tmp_path, request)
    settings, _ = legacy.prepare(shape, tmp_path, request)
    with connect(settings) as connection:
        on_table = " ON audit_events" if settings.is_mysql else ""  # MySQL names the table
        connection.exec_driver_sql(f"DROP INDEX idx_audit_outcome{on_table}")
        connection.exec_driver_sql("DROP TABLE IF EXISTS goose_db_version")
        connection.commit()
    return settings, state


def test_nearest_state_prefers_a_missing_index_over_an_extra_table(
    dialect, tmp_path, request
) -> None:
    """The refusal names the state the database lacks an index of, and hints at it."""
    settings, state = _without_audit_index(dialect, tmp_path, request)
    stamp = AUDITED[dialect][2]
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert refused.value.nearest_state == state
    assert refused.value.differences == ("missing index idx_audit_outcome on audit_events",)
    assert f"--force-stamp {stamp}" in (refused.value.hint or "")
    result = commands.adopt(settings, force_stamp=stamp)  # following the hint works
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


# (shape, its stamp) per dialect: an older state, and one of the head shape.
OLDER = {"sqlite": ("L1", "0002"), "postgresql": ("goose-3", "0004"), "mysql": ("goose-3", "0004")}
HEAD_SHAPED = {"sqlite": "head-unversioned", "postgresql": "goose-6", "mysql": "goose-5"}


def _shape(dialect: str, name: str) -> legacy.Legacy:
    return next(shape for shape in legacy.shapes(dialect) if shape.name == name)


def test_status_of_an_unversioned_database_lists_what_setup_would_run(
    dialect, tmp_path, request
) -> None:
    """Pending starts after the detected state, in the text and the JSON."""
    name, stamp = OLDER[dialect]
    settings, _ = legacy.prepare(_shape(dialect, name), tmp_path, request)
    status = commands.status(settings)
    expected = revisions.between(stamp, revisions.head_revision())
    assert status.pending == expected and not status.up_to_date
    assert status.as_dict()["pending"] == expected
    assert status.as_dict()["current_revision"] is None
    assert f"pending:  {', '.join(expected)}" in render.render_status(status)


def test_setup_of_a_head_shaped_unversioned_database_says_it_adopted(
    dialect, tmp_path, request
) -> None:
    """Nothing to run after the stamp, yet the database changed: the result says so."""
    settings, _ = legacy.prepare(_shape(dialect, HEAD_SHAPED[dialect]), tmp_path, request)
    status = commands.status(settings)
    assert status.pending == [] and not status.up_to_date
    assert "none after the stamp" in render.render_status(status)
    result = commands.setup(settings)
    assert result.adopted == "0007" and result.action == "adopted" and result.changed
    assert result.as_dict()["adopted"] == "0007"
    head = revisions.head_revision()
    assert render.render_run(result).splitlines()[0] == (
        f"revision: unversioned (detected 0007) -> {head}, adopted"
    )
    assert commands.status(settings).up_to_date


def test_migrating_down_to_base_forgets_the_adoption(dialect, tmp_path, request) -> None:
    """After down to base and a fresh setup, status shows no stale adoption record."""
    name, _ = OLDER[dialect]
    settings, _ = legacy.prepare(_shape(dialect, name), tmp_path, request)
    commands.setup(settings)
    assert commands.status(settings).adopted_from is not None
    commands.downgrade(settings, revisions.BASE, allow_data_loss=True, no_backup=True)
    assert commands.status(settings).adopted_from is None
    commands.setup(settings)
    status = commands.status(settings)
    assert status.up_to_date and status.as_dict()["adopted_from"] is None


def test_a_run_from_an_empty_database_forgets_a_stale_adoption(sqlite_settings, tmp_path) -> None:
    """Down to base by another way (the alembic command), then setup: no stale record."""
    from alembic import command
    from llm_proxy_db.config.alembic_config import make_config

    legacy.create(sqlite_settings, _shape("sqlite", "L1"))
    commands.setup(sqlite_settings)
    command.downgrade(make_config(sqlite_settings), "base")
    assert commands.status(sqlite_settings).adopted_from is not None  # stale until the next run
    commands.setup(sqlite_settings)
    assert commands.status(sqlite_settings).as_dict()["adopted_from"] is None
