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
        "checks": sorted(re.sub(r"\s+", "", c["sqltext"]) for c in inspector.get_check_constraints(table)),
    }


def _default(value: str | None) -> str | None:
    return None if value is None else value.strip("'\"() ").lower()
