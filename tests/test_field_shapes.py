"""Every field shape the release closure generates is adopted with every row, to the service's head.

``tests/field_shapes.py`` starts each service release on every shape an earlier release left
(reference section 3b).  ``llm-proxy-db setup`` must adopt each of them: the service's own
artefacts (``goose_db_version`` with only its seed row, ``migration_lock``, ``idx_tokens_token``
on the old token-keyed table, an ``audit_events`` a later release created with a four-value
CHECK) are recognised, not refused; the result equals the head the service itself creates
(``tests/fixtures/head_sqlite.sql`` / ``head_postgresql.sql``) and keeps every row.
"""

from __future__ import annotations

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import SchemaMismatchError
from llm_proxy_db.migration import revisions
from llm_proxy_db.schema.fingerprint import fingerprint
from llm_proxy_db.schema.fingerprint_diff import diff
from tests import field_shapes, legacy
from tests.seed import snapshot
from tests.service_emulator import exercise_service, start_service


def _facts(settings: Settings) -> tuple[dict, dict, set[str]]:
    with connect(settings) as connection:
        rows, counts = snapshot(connection), legacy.row_counts(connection)
        tables = field_shapes.table_names(connection)
        connection.commit()
    return rows, counts, tables


def assert_service_happy(settings: Settings, expected_head, before_rows, before_counts) -> None:
    """Schema equals the service's head, every row is kept, and the emulated service's
    start-up changes nothing while every one of its statements works."""
    with connect(settings) as connection:
        assert diff(fingerprint(connection), expected_head) == []
        assert legacy.same_rows(before_rows, snapshot(connection)), "rows changed"
        counts = legacy.row_counts(connection)
        for table in ("projects", "tokens", "audit_events"):
            assert counts.get(table, 0) == before_counts.get(table, 0), table
        assert connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE id IS NULL").scalar() == 0
        connection.commit()
    started = start_service(settings)
    assert started.changed_nothing, f"the service's start-up changed the adopted database: {started.applied}"
    assert exercise_service(settings) > 0


@pytest.fixture(scope="module")
def sqlite_head_print(tmp_path_factory):
    """The head the 2026-01-03 release creates on a new SQLite file."""
    path = tmp_path_factory.mktemp("service-head") / "head.db"
    field_shapes.run_sqlite(path, ["2026-01-03"])
    with connect(Settings(driver="sqlite", database_path=path)) as connection:
        return fingerprint(connection)


def _postgres_head_print(request) -> object:
    url = request.getfixturevalue("postgres_database_factory")()
    settings = Settings(driver="postgres", database_url=url)
    head = [s for s in field_shapes.postgres_shapes() if s.goose_version == 6][0]
    with connect(settings) as connection:
        for statement in field_shapes.postgres_statements(head):
            connection.exec_driver_sql(statement)
        connection.commit()
        return fingerprint(connection)


@pytest.mark.parametrize("shape", field_shapes.params())
def test_setup_adopts_every_generated_field_shape(shape, tmp_path, request, sqlite_head_print) -> None:
    """Adopted (never refused), at head, equal to the service's own head, every row kept."""
    settings = legacy.settings_for(shape.dialect, tmp_path, request)
    field_shapes.build(settings, shape)
    before_rows, before_counts, before_tables = _facts(settings)
    result = commands.setup(settings)
    assert result.after == revisions.head_revision()
    expected = sqlite_head_print if shape.dialect == "sqlite" else _postgres_head_print(request)
    assert_service_happy(settings, expected, before_rows, before_counts)
    _, _, after_tables = _facts(settings)
    assert before_tables <= after_tables, "a table of the service's was dropped"


def test_the_closure_has_the_shapes_of_the_reference() -> None:
    """Section 3b's examples are in the closure, and every shape is counted once."""
    names = {shape.name for shape in field_shapes.sqlite_shapes()}
    assert "2025-05-21+2025-12-02+2026-01-03" in names  # L0, goose seed row, then today
    assert "2025-08-14+2025-12-02" in names  # L2 whose goose start failed
    assert "2025-12-02+2025-12-14" in names  # goose-3 file gaining idx_tokens_token
    counts = field_shapes.counts_by_origin()
    assert sum(counts.values()) == len(field_shapes.sqlite_shapes()) + len(field_shapes.postgres_shapes())
    broken = [s for s in field_shapes.sqlite_shapes() if s.releases[-1] not in s.working_for]
    assert broken, "the closure holds shapes the last release cannot serve"


ARTEFACT_SHAPES = [
    shape for shape in field_shapes.sqlite_shapes()
    if shape.name in ("2025-05-21+2025-12-02+2026-01-03", "2025-12-02+2025-12-14",
                      "2025-08-14+2025-12-02")
]


def _refused_untouched(settings: Settings, expected_line: str) -> None:
    assert settings.database_path is not None
    before = settings.database_path.read_bytes()
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings)
    assert expected_line in str(refused.value) or expected_line in refused.value.differences
    assert settings.database_path.read_bytes() == before, "a refused file was changed"


@pytest.mark.parametrize("damaged", sorted(legacy.DAMAGES))
@pytest.mark.parametrize("shape", ARTEFACT_SHAPES, ids=lambda shape: shape.id)
def test_damage_next_to_service_artefacts_is_refused_untouched(shape, damaged, tmp_path, request) -> None:
    """Artefacts are recognised, damage still is not: refused and byte-identical."""
    settings = legacy.settings_for("sqlite", tmp_path, request)
    field_shapes.build(settings, shape)
    with connect(settings) as connection:
        expected = legacy.damage(connection, damaged)
    _refused_untouched(settings, expected)


def test_four_value_audit_without_the_index_of_the_same_start_is_refused(tmp_path, request) -> None:
    """A four-value audit_events next to L0 tables comes with idx_tokens_token, or it is damage."""
    settings = legacy.settings_for("sqlite", tmp_path, request)
    field_shapes.build(settings, next(s for s in ARTEFACT_SHAPES if "2026-01-03" in s.name))
    with connect(settings) as connection:
        connection.exec_driver_sql("DROP INDEX idx_tokens_token")
        connection.commit()
    _refused_untouched(settings, "the schema matches no known state")


def test_goose_seed_row_on_a_goose_shape_is_refused(tmp_path, request) -> None:
    """Goose version 0 belongs to L0-L2 files only; on the goose-3 shape it is a contradiction."""
    settings = legacy.settings_for("sqlite", tmp_path, request)
    field_shapes.build(settings, next(s for s in ARTEFACT_SHAPES if s.name.startswith("2025-12-02")))
    with connect(settings) as connection:
        connection.exec_driver_sql("DELETE FROM goose_db_version WHERE version_id > 0")
        connection.commit()
    _refused_untouched(settings, "unexpected column tokens.cache_hit_count")
