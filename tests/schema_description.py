"""A plain, comparable description of our tables as the database reports them (tests only)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.seed import OUR_TABLES


def describe(connection: Connection) -> dict[str, Any]:
    """Columns, keys, foreign keys, indexes and CHECKs of our tables, order-independent."""
    inspector = sa.inspect(connection)
    return {
        table: _describe_table(inspector, table)
        for table in OUR_TABLES
        if inspector.has_table(table)
    }


def _describe_table(inspector: Any, table: str) -> dict[str, Any]:
    return {
        "columns": {
            col["name"]: (str(col["type"]).upper(), col["nullable"], _default(col.get("default")))
            for col in inspector.get_columns(table)
        },
        "primary_key": sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
        "foreign_keys": sorted(
            (
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(table)
        ),
        "indexes": sorted(
            (ix["name"], tuple(ix["column_names"]), bool(ix["unique"])) for ix in inspector.get_indexes(table)
        ),
        "checks": sorted(re.sub(r"\s+", "", c["sqltext"]) for c in _checks(inspector, table)),
    }


def _checks(inspector: Any, table: str) -> list[dict[str, Any]]:
    """CHECKs as the database reports them; on MySQL from information_schema (column-level too)."""
    if inspector.dialect.name == "mysql":
        from llm_proxy_db.dialects.mysql.ddl import check_constraints

        return check_constraints(inspector.bind, table)
    return list(inspector.get_check_constraints(table))


def sql_statements(script: str) -> list[str]:
    """The statements of a plain SQL script (``--`` comments dropped, split on ``;``)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


def _default(value: str | None) -> str | None:
    return None if value is None else value.strip("'\"() ").lower()
