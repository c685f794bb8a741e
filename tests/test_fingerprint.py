"""Fingerprints: normalisation of spellings, column-order independence, readable diffs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from llm_proxy_db import commands
from llm_proxy_db.adoption.known_states import revision_fingerprints
from llm_proxy_db.database import connect
from llm_proxy_db.schema.fingerprint import (
    ColumnPrint,
    ForeignKeyPrint,
    IndexPrint,
    fingerprint,
    normalise_check,
    normalise_default,
    normalise_type,
)
from llm_proxy_db.schema.fingerprint_diff import diff


@pytest.mark.parametrize(
    "text",
    [
        "outcome IN ('success', 'failure')",
        "outcome IN ('failure','success')",
        "(outcome IN ('success', 'failure'))",
        "outcome = ANY (ARRAY['success'::text, 'failure'::text])",
        "((outcome)::text = ANY ((ARRAY['success'::character varying, "
        "'failure'::character varying])::text[]))",
    ],
)
def test_check_spellings_normalise_to_one_value_set(text: str) -> None:
    """PostgreSQL's ANY(ARRAY[...]) and SQLite's IN (...) are the same CHECK."""
    assert normalise_check(text) == "outcome IN ('failure', 'success')"


def test_other_checks_are_compared_as_normalised_text() -> None:
    """A CHECK we do not parse is compared without casts, outer parentheses or case."""
    assert normalise_check("((request_count >= 0))") == "request_count >= 0"
    assert normalise_check("(REQUEST_COUNT)::integer >= 0") == "(request_count) >= 0"


@pytest.mark.parametrize(
    ("raw", "type_name", "expected"),
    [
        (None, "text", None),
        ("1", "boolean", "true"),
        ("'1'", "boolean", "true"),
        ("true", "boolean", "true"),
        ("0", "boolean", "false"),
        ("0", "integer", "0"),
        ("CURRENT_TIMESTAMP", "datetime", "current_timestamp"),
        ("now()", "datetime", "current_timestamp"),
        ("(datetime('now'))", "datetime", "current_timestamp"),
        ("gen_random_uuid()", "uuid", "gen_random_uuid()"),
        ("'Hello World'::text", "text", "Hello World"),
    ],
)
def test_defaults_normalise(raw: str | None, type_name: str, expected: str | None) -> None:
    """Defaults compare by meaning, not by each dialect's spelling."""
    assert normalise_default(raw, type_name) == expected


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        (sqlite.DATETIME(), "datetime"),
        (postgresql.TIMESTAMP(), "datetime"),
        (postgresql.TIMESTAMP(timezone=True), "datetime with time zone"),
        (sa.VARCHAR(191), "text"),
        (sa.TEXT(), "text"),
        (sa.BOOLEAN(), "boolean"),
        (sa.INTEGER(), "integer"),
        (sa.BIGINT(), "bigint"),
        (postgresql.UUID(), "uuid"),
        (sa.DATE(), "date"),
        (sa.NUMERIC(), "numeric"),
    ],
)
def test_types_normalise(type_: sa.types.TypeEngine, expected: str) -> None:
    """DATETIME and TIMESTAMP are one type; so are TEXT and VARCHAR."""
    assert normalise_type(type_) == expected


def test_live_database_fingerprint(settings) -> None:
    """Other tables are listed but never compared; the fingerprint serialises to JSON."""
    commands.upgrade(settings)
    with connect(settings) as connection:
        before = fingerprint(connection)
        connection.exec_driver_sql("CREATE TABLE user_notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.commit()
        after = fingerprint(connection)
        head = revision_fingerprints(connection)["0007"]
    assert after == before == head
    assert "alembic_version" in before.other_tables
    assert "user_notes" in after.other_tables and "user_notes" not in after.tables
    assert set(after.tables) == {"projects", "tokens", "audit_events"}
    assert json.loads(json.dumps(after.as_dict()))["tables"]["tokens"]["columns"]["id"][
        "primary_key"
    ]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The SQLite head fingerprint, to be changed by hand in the diff tests."""
    from llm_proxy_db.config.settings import Settings

    path = tmp_path_factory.mktemp("head") / "head.db"
    with connect(Settings(driver="sqlite", database_path=path)) as connection:
        return revision_fingerprints(connection)["0007"]


def _table(fp, name):
    return fp.tables[name]


def test_diff_of_equal_fingerprints_is_empty(head) -> None:
    """No differences, no lines."""
    assert diff(head, head) == []


def test_diff_names_tables_and_columns(head) -> None:
    """Missing and unexpected tables and columns, one line each."""
    tokens = _table(head, "tokens")
    columns = {k: v for k, v in tokens.columns.items() if k != "deactivated_at"}
    columns["foo"] = ColumnPrint("text", True, None, False)
    actual = replace(
        head,
        tables={
            "tokens": replace(tokens, columns=columns),
            "projects": _table(head, "projects"),
            "user_table": _table(head, "projects"),
        },
    )
    assert diff(actual, head) == [
        "table audit_events missing",
        "column tokens.deactivated_at missing",
        "unexpected column tokens.foo",
        "unexpected table user_table",
    ]


def test_diff_names_column_attributes(head) -> None:
    """Type, nullability, default and primary key differences are spelled out."""
    tokens = _table(head, "tokens")
    columns = dict(tokens.columns)
    columns["max_requests"] = ColumnPrint("text", False, "5", False)
    columns["token"] = replace(columns["token"], primary_key=True)
    actual = head.with_column("tokens", "max_requests", columns["max_requests"]).with_column(
        "tokens", "token", columns["token"]
    )
    assert diff(actual, head) == [
        "column tokens.max_requests has type text, expected integer",
        "column tokens.max_requests is NOT NULL, expected nullable",
        "column tokens.max_requests has default 5, expected none",
        "primary key of tokens is (id, token), expected (id)",
    ]


def test_diff_names_constraints_and_indexes(head) -> None:
    """Unique constraints, foreign keys, indexes and CHECKs, missing or unexpected."""
    tokens, audit = _table(head, "tokens"), _table(head, "audit_events")
    indexes = {k: v for k, v in tokens.indexes.items() if k != "idx_tokens_token"}
    indexes["idx_tokens_is_active"] = IndexPrint(("is_active", "project_id"), True)
    indexes["idx_extra"] = IndexPrint(("token",), False)
    fk = ForeignKeyPrint(("project_id",), "projects", ("id",), "NO ACTION")
    actual = replace(
        head,
        tables={
            **head.tables,
            "tokens": replace(
                tokens, unique=frozenset(), foreign_keys=frozenset({fk}), indexes=indexes
            ),
            "audit_events": replace(audit, checks=frozenset({"outcome IN ('success')"})),
        },
    )
    assert diff(actual, head) == [
        "missing check constraint on audit_events: "
        "outcome IN ('denied', 'error', 'failure', 'success')",
        "unexpected check constraint on audit_events: outcome IN ('success')",
        "missing unique constraint on tokens (token)",
        "missing foreign key tokens(project_id) -> projects(id) ON DELETE CASCADE",
        "unexpected foreign key tokens(project_id) -> projects(id) ON DELETE NO ACTION",
        "unexpected index idx_extra on tokens",
        "index idx_tokens_is_active on tokens is unique on (is_active, project_id), "
        "expected on (is_active)",
        "missing index idx_tokens_token on tokens",
    ]
