"""Adoption of every field shape: to head with every row, or refused with nothing changed.

Each shape is built from the service's own DDL and seeded with a few hundred rows
(``openai_api_key`` values, expired and deactivated tokens, audit events of each allowed
outcome).  ``llm-proxy-db setup`` (commands.setup) must adopt it and reach head with every
row intact; a damaged copy must be refused with a readable difference and left exactly as
it was: same fingerprint (other tables included), same row counts, no alembic_version.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.adoption import adopt as adoption
from llm_proxy_db.adoption.known_states import revision_fingerprints
from llm_proxy_db.database import connect
from llm_proxy_db.errors import ConfigError, MigrationError, SchemaMismatchError
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.adoption_record import ADOPTION_TABLE
from llm_proxy_db.schema.fingerprint import fingerprint
from llm_proxy_db.schema.fingerprint_diff import diff
from llm_proxy_db.service import goose
from tests import legacy
from tests.seed import snapshot


def _facts(settings):
    """Rows, counts and the full fingerprint (other tables included)."""
    with connect(settings) as connection:
        facts = (
            snapshot(connection),
            legacy.row_counts(connection),
            fingerprint(connection).as_dict(),
        )
    return facts


def _check_head(connection, before_rows, before_counts) -> None:
    assert diff(fingerprint(connection), revision_fingerprints(connection)["0007"]) == []
    after_rows = snapshot(connection)
    assert legacy.same_rows(before_rows, after_rows), "rows changed"
    after_counts = legacy.row_counts(connection)
    for table in ("projects", "tokens", "audit_events"):
        assert after_counts.get(table, 0) == before_counts.get(table, 0), table
    ids = connection.exec_driver_sql(
        "SELECT count(*), count(id), count(DISTINCT id) FROM tokens"
    ).one()
    assert ids[0] == ids[1] == ids[2]
    orphans = connection.exec_driver_sql(
        "SELECT count(*) FROM tokens t LEFT JOIN projects p ON p.id = t.project_id "
        "WHERE p.id IS NULL"
    ).scalar_one()
    assert orphans == 0
    if connection.dialect.name == "sqlite":
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []


@pytest.mark.parametrize("shape", legacy.params())
def test_setup_adopts_every_field_shape(shape, tmp_path, request) -> None:
    """Stamped at the detected state, migrated to head, every row kept, goose in step."""
    settings, _ = legacy.prepare(shape, tmp_path, request)
    before_rows, before_counts, _ = _facts(settings)
    assert before_counts["projects"] and (before_counts.get("tokens") or 0) > 100
    result = commands.setup(settings)
    assert result.after == revisions.head_revision()
    if settings.is_sqlite:  # the guarded path backed the file up before stamping
        assert result.backup is not None and result.backup.exists()
    with connect(settings) as connection:
        _check_head(connection, before_rows, before_counts)
        if not settings.is_sqlite:  # the service's goose runner finds nothing to apply
            last = goose.goose_version_at(settings.dialect_name, revisions.head_revision()) or 0
            assert goose.recorded_versions(connection) == list(range(1, last + 1))  # 6 PG, 5 MySQL
        elif shape.goose_version is not None:  # no goose on SQLite today: left as it was
            assert goose.goose_version(connection) == shape.goose_version
    status = commands.status(settings)
    assert status.up_to_date and status.detected_state is None
    assert status.adopted_from["state"] == shape.expected_state
    assert status.adopted_from["goose_version"] == shape.goose_version
    assert status.adopted_from["forced"] is False


@pytest.mark.parametrize(("shape", "damaged"), legacy.damaged_params())
def test_damaged_shapes_are_refused_untouched(shape, damaged, tmp_path, request) -> None:
    """Nothing is created or changed; the difference names what is broken."""
    settings, expected_line = legacy.prepare(shape, tmp_path, request, damaged)
    before = _facts(settings)
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert expected_line in refused.value.differences
    assert expected_line in refused.value.message
    if settings.is_mysql and shape.goose_version is not None:  # maybe a goose file part-applied
        assert "goose" in (refused.value.hint or "") and "force" not in (refused.value.hint or "")
    else:
        assert "--force-stamp" in (refused.value.hint or "")
    assert _facts(settings) == before
    assert not {"alembic_version", ADOPTION_TABLE} & set(before[2]["other_tables"])
    if settings.is_sqlite:  # refused before the lock and the backup
        assert sorted(p.name for p in settings.database_path.parent.iterdir()) == ["llm-proxy.db"]
    assert commands.status(settings).detected_state == "unknown"


SOME = [
    pytest.param("sqlite", "L1", id="sqlite-L1"),
    pytest.param("postgresql", "goose-3", id="postgresql-goose-3", marks=pytest.mark.postgresql),
]


def _shape(dialect: str, name: str) -> legacy.Legacy:
    return next(shape for shape in legacy.shapes(dialect) if shape.name == name)


@pytest.mark.parametrize(("dialect", "name"), SOME)
def test_dry_run_and_status_report_the_state(dialect, name, tmp_path, request) -> None:
    """A dry run plans stamp, record and upgrades; it changes nothing."""
    shape = _shape(dialect, name)
    settings, _ = legacy.prepare(shape, tmp_path, request)
    before = _facts(settings)
    result = commands.adopt(settings, dry_run=True)
    assert not result.applied and _facts(settings) == before
    plan = result.plan
    assert plan.detection.state.name == shape.expected_state
    kinds = [action.kind for action in plan.actions]
    assert kinds[:2] == ["stamp", "record_adoption"] and kinds[-1] == "upgrade"
    assert [a.detail for a in plan.actions if a.kind == "upgrade"][-1] == "0007"
    assert ("sync_goose" in kinds) == (dialect == "postgresql")
    assert json.loads(json.dumps(plan.as_dict()))["detected"]["state"] == shape.expected_state
    assert commands.status(settings).detected_state == shape.expected_state
    assert commands.status(settings).as_dict()["detected_state"] == shape.expected_state


@pytest.mark.parametrize(("dialect", "name"), SOME)
def test_adopt_to_a_target_then_upgrade(dialect, name, tmp_path, request) -> None:
    """``--to`` stops early; a later adopt on the versioned database just upgrades."""
    shape = _shape(dialect, name)
    settings, _ = legacy.prepare(shape, tmp_path, request)
    first = commands.adopt(settings, target="0005")
    assert first.run.after == "0005" and first.plan.stamp == revision_of(shape)
    again = commands.adopt(settings)
    assert again.plan.detection.kind == adoption.VERSIONED and again.plan.stamp is None
    assert again.run.applied == ["0006", "0007"]


def revision_of(shape: legacy.Legacy) -> str:
    """The revision a shape is stamped at."""
    return {"goose-1": "0002"}.get(shape.expected_state, shape.expected_state)


def test_adopting_below_the_detected_state_is_refused(sqlite_settings) -> None:
    """A head-shaped file cannot be 'adopted' to 0003: that would be a downgrade."""
    legacy.create(sqlite_settings, _shape("sqlite", "head-unversioned"))
    with pytest.raises(ConfigError, match="downgrade"):
        commands.adopt(sqlite_settings, target="0003")


def _set_goose(settings, version: int) -> None:
    with connect(settings) as connection:
        connection.exec_driver_sql(
            f"INSERT INTO goose_db_version (version_id, is_applied) VALUES ({version}, TRUE)"
        )
        connection.commit()


GOOSE_LIES = [
    pytest.param("sqlite", "goose-1", 2, "disagree", id="sqlite-goose-1-says-2"),
    pytest.param("sqlite", "goose-1", 7, "newer", id="sqlite-goose-says-7"),
    pytest.param(
        "postgresql",
        "goose-3",
        4,
        "disagree",
        id="postgresql-goose-3-says-4",
        marks=pytest.mark.postgresql,
    ),
]


@pytest.mark.parametrize(("dialect", "name", "claimed", "word"), GOOSE_LIES)
def test_goose_version_that_disagrees_is_refused(dialect, name, claimed, word, tmp_path, request):
    """The goose version is a hint verified by the fingerprint, never trusted alone."""
    settings, _ = legacy.prepare(_shape(dialect, name), tmp_path, request)
    _set_goose(settings, claimed)
    before = _facts(settings)
    with pytest.raises(SchemaMismatchError, match=word):
        commands.adopt(settings)
    assert _facts(settings) == before


def test_alembic_check_ignores_goose_and_the_adoption_record(sqlite_settings) -> None:
    """After adoption ``alembic check`` finds no drift: only our tables are compared."""
    from alembic import command
    from llm_proxy_db.config.alembic_config import make_config

    legacy.create(sqlite_settings, _shape("sqlite", "goose-1"))
    commands.setup(sqlite_settings)
    with connect(sqlite_settings, foreign_keys=False) as connection:
        command.check(make_config(connection=connection))


def test_a_failing_hand_over_changes_nothing(sqlite_settings) -> None:
    """Stamp and record are one transaction: a failure rolls both back."""
    legacy.create(sqlite_settings, _shape("sqlite", "goose-1"))
    with connect(sqlite_settings) as connection:  # an adoption record that refuses new rows
        from llm_proxy_db.migration import adoption_record

        adoption_record._metadata.create_all(connection)
        connection.exec_driver_sql(
            f"CREATE TRIGGER no_record BEFORE INSERT ON {ADOPTION_TABLE} "
            "BEGIN SELECT RAISE(ABORT, 'read-only record'); END"
        )
        connection.commit()
    before = _facts(sqlite_settings)
    with pytest.raises(MigrationError, match="rolled back, nothing was changed: read-only record"):
        commands.setup(sqlite_settings)
    assert _facts(sqlite_settings) == before


@pytest.mark.postgresql
def test_a_failing_goose_hand_over_changes_nothing(tmp_path, request) -> None:
    """Stamp, record and goose in step are one transaction: a goose failure rolls all back."""
    settings, _ = legacy.prepare(_shape("postgresql", "goose-1"), tmp_path, request)
    with connect(settings) as connection:  # a goose table that refuses changes
        connection.exec_driver_sql(
            "CREATE FUNCTION no_goose() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'read-only goose table'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER no_goose BEFORE INSERT OR DELETE ON goose_db_version "
            "FOR EACH ROW EXECUTE FUNCTION no_goose()"
        )
        connection.commit()
    before = _facts(settings)
    with pytest.raises(MigrationError, match="rolled back, nothing was changed: read-only goose"):
        commands.setup(settings)
    assert _facts(settings) == before


def test_empty_database_with_goose_table(settings) -> None:
    """Goose seed row only: migrate from base; goose follows the revisions (PostgreSQL)."""
    with connect(settings) as connection:
        connection.exec_driver_sql(legacy.GOOSE_TABLE_SQL[connection.dialect.name])
        connection.exec_driver_sql(
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, TRUE)"
        )
        connection.commit()
    assert commands.status(settings).detected_state == "empty"
    result = commands.upgrade(settings)
    assert result.after == revisions.head_revision()
    with connect(settings) as connection:
        expected = goose.goose_version_at(settings.dialect_name, revisions.head_revision()) or 0
        assert goose.goose_version(connection) == expected
    assert commands.status(settings).adopted_from is None


def test_goose_claims_tables_that_do_not_exist(sqlite_settings) -> None:
    """goose says version 3 but the database is empty: refuse."""
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql(legacy.GOOSE_TABLE_SQL["sqlite"])
        connection.commit()
    _set_goose(sqlite_settings, 3)
    with pytest.raises(SchemaMismatchError, match="none of our tables"):
        commands.adopt(sqlite_settings)


def test_force_stamp_adopts_a_damaged_database_loudly(sqlite_settings) -> None:
    """--force-stamp records the revision, warns, and keeps the differences in the record."""
    legacy.create(sqlite_settings, _shape("sqlite", "L1"), "index-missing")
    planned = commands.adopt(sqlite_settings, dry_run=True, force_stamp="0002")
    assert planned.plan.forced and "FORCED" in planned.plan.warnings[0]
    assert "missing index idx_tokens_expires_at on tokens" in planned.plan.warnings
    result = commands.adopt(sqlite_settings, force_stamp="0002")
    assert result.run.after == revisions.head_revision()
    record = commands.status(sqlite_settings).adopted_from
    assert record["forced"] is True and record["stamped_revision"] == "0002"
    assert record["differences"] == ["missing index idx_tokens_expires_at on tokens"]


def test_force_stamp_needs_an_unversioned_database_with_tables(sqlite_settings) -> None:
    """Forcing a stamp on an empty or a versioned database makes no sense."""
    with pytest.raises(ConfigError, match="force-stamp"):
        commands.adopt(sqlite_settings, force_stamp="0002")
    commands.upgrade(sqlite_settings)
    with pytest.raises(ConfigError, match="force-stamp"):
        commands.adopt(sqlite_settings, force_stamp="0002")


def test_adopting_a_missing_file_is_refused_and_creates_nothing(sqlite_settings) -> None:
    """Nothing to adopt: refused (exit 2), run or dry run; the file is not created."""
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match="does not exist: there is no database to adopt"):
            commands.adopt(sqlite_settings, dry_run=dry_run)
    assert not sqlite_settings.database_path.exists()
    assert not list(sqlite_settings.database_path.parent.glob("*.lock"))
    assert commands.status(sqlite_settings).detected_state == "empty"


def test_plain_upgrade_of_a_versioned_database_does_not_adopt(settings) -> None:
    """A versioned database is never re-detected or re-stamped."""
    commands.upgrade(settings, "0003")
    with connect(settings) as connection:
        assert not adoption.needs_adoption(connection)
        assert adoption.detect(connection).state_name == "versioned at 0003"
    assert commands.upgrade(settings).applied == ["0004", "0005", "0006", "0007"]
    with connect(settings) as connection:
        assert not sa.inspect(connection).has_table(ADOPTION_TABLE)


RENAMED_CONSTRAINTS = [
    pytest.param("goose-6", "audit_events", "audit_events_outcome_check", id="goose-6-check"),
    pytest.param("goose-4", "tokens", "tokens_token_unique", id="goose-4-unique"),
]


@pytest.mark.postgresql
@pytest.mark.parametrize(("name", "table", "constraint"), RENAMED_CONSTRAINTS)
def test_postgresql_constraint_named_otherwise_is_refused(name, table, constraint, tmp_path, request):
    """Revisions drop these constraints by name: a database naming them otherwise is refused."""
    settings, _ = legacy.prepare(_shape("postgresql", name), tmp_path, request)
    with connect(settings) as connection:
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME CONSTRAINT {constraint} TO legacy_name")
        connection.commit()
    before = _facts(settings)
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert refused.value.differences == (
        f"no constraint named {constraint} on {table} (revisions refer to it by name)",
        f"unexpected constraint name legacy_name on {table}",
    )
    assert _facts(settings) == before
