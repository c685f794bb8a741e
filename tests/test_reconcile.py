"""The statements ``migrate drift`` offers, per dialect, and the reference carried across dialects
(no database needed: Alembic renders the SQL offline)."""

from __future__ import annotations

import pytest

from llm_proxy_db.schema.fingerprint import ColumnPrint, Fingerprint, ForeignKeyPrint, IndexPrint, TablePrint
from llm_proxy_db.schema.reconcile import reconcile
from llm_proxy_db.schema.schema_diff import CHANGED, EXTRA, MISSING, Difference, as_json, differences, translate

DIALECTS = ("sqlite", "postgresql", "mysql")
TEXT = ColumnPrint("text", False, None, False)


def _table(**columns: ColumnPrint) -> TablePrint:
    return TablePrint(columns={"id": ColumnPrint("text", False, None, True), **columns})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_index_whose_columns_changed_is_dropped_and_created(dialect: str) -> None:
    found = reconcile(
        Difference(CHANGED, "index", "tokens", "idx_t", IndexPrint(("a",), False), IndexPrint(("a", "b"), True)),
        dialect,
    )
    assert found.statements[0].startswith("DROP INDEX idx_t")
    assert found.statements[1] == "CREATE UNIQUE INDEX idx_t ON tokens (a, b);" and found.safe


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_missing_not_null_column_without_default_is_flagged(dialect: str) -> None:
    found = reconcile(Difference(MISSING, "column", "tokens", "note", None, TEXT), dialect)
    assert "ADD COLUMN note TEXT NOT NULL" in found.statements[0]
    assert not found.safe and "fill it" in (found.note or "")
    odd = reconcile(Difference(MISSING, "column", "tokens", "n", None, ColumnPrint("inet", True, None, False)), dialect)
    assert odd.statements == () and "no portable spelling" in (odd.note or "")
    stamp = ColumnPrint("datetime", False, "current_timestamp", False)
    added = reconcile(Difference(MISSING, "column", "t", "at", None, stamp), dialect)
    assert "CURRENT_TIMESTAMP" in added.statements[0]
    word = ColumnPrint("text", False, "it's", False)
    assert "'it''s'" in reconcile(Difference(MISSING, "column", "t", "w", None, word), dialect).statements[0]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_defaults_and_types_change_in_place_where_the_dialect_can(dialect: str) -> None:
    have = ColumnPrint("integer", False, "5", False)
    default = reconcile(Difference(CHANGED, "column", "tokens", "request_count", "5", "0", "default"), dialect, have)
    assert "0" in default.statements[0] and default.safe
    odd = reconcile(Difference(CHANGED, "column", "tokens", "request_count", "integer", "money", "type"), dialect, have)
    assert odd.statements == () and not odd.safe
    tighter = reconcile(Difference(CHANGED, "column", "tokens", "x", True, False, "nullable"), dialect, have)
    assert "fill them first" in (tighter.note or "") and not tighter.safe


@pytest.mark.parametrize("what", ["unique", "foreign_key", "check", "primary_key", "constraint_name"])
def test_constraints_and_tables_get_a_note_not_a_guess(what: str) -> None:
    found = reconcile(Difference(MISSING, what, "tokens", "x", None, "x"), "postgresql")
    assert found.statements == () and "revisions own" in (found.note or "")
    table = reconcile(Difference(MISSING, "table", "audit_events", "audit_events"), "sqlite")
    assert table.statements == () and "backup" in (table.note or "")


def test_deviations_carry_over_to_another_dialects_print() -> None:
    """A reference's changes to its own revision's schema, applied to this dialect's print of it."""
    fk = ForeignKeyPrint(("project_id",), "projects", ("id",), "CASCADE")
    base = Fingerprint(tables={"tokens": _table(project_id=TEXT, note=TEXT)})
    reference_expected = Fingerprint(tables={"tokens": _table(project_id=TEXT, note=TEXT)})
    reference_actual = Fingerprint(tables={"tokens": TablePrint(
        columns={"id": ColumnPrint("text", False, None, False), "project_id": ColumnPrint("bigint", True, None, True)},
        unique=frozenset({("project_id",)}), foreign_keys=frozenset({fk}),
        indexes={"ops": IndexPrint(("project_id",), False)}, checks=frozenset({"id <> ''"}),
        constraint_names=frozenset({"ops_check"}),
    ), "extra_table": _table()})
    deviations = differences(reference_actual, reference_expected)
    assert {(d.kind, d.object) for d in deviations} >= {(EXTRA, "table"), (MISSING, "column"), (CHANGED, "column")}
    translated = translate(base, deviations, names=False)
    assert differences(translated, reference_actual) == [
        Difference(MISSING, "constraint_name", "tokens", "ops_check", None, "ops_check")
    ]
    assert differences(translate(base, deviations), reference_actual) == []
    assert [d.describe() for d in deviations][:1] == ["extra table extra_table"]
    assert as_json(fk) == fk.describe() and as_json(reference_actual.tables["extra_table"]) == {"columns": ["id"]}
