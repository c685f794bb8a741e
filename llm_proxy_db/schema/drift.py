"""Drift: what autogenerate finds between a live database and the head metadata, as sentences.

Alembic's ``compare_metadata`` does the comparison; this module only turns its diff tuples
into one readable line each (``index idx_projects_name on projects is missing``).  "Missing"
means the head metadata has it and the database does not; "unexpected" the reverse.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects.base import ADOPTION_TABLE, GOOSE_TABLE, RUN_LOG_TABLE
from llm_proxy_db.schema.head import head_metadata

# Tables that are the service's or this tool's bookkeeping, never drift.
NOT_COMPARED = frozenset({GOOSE_TABLE, "migration_lock", ADOPTION_TABLE, RUN_LOG_TABLE})


def drift(connection: Connection) -> list[str]:
    """Every difference between the database on ``connection`` and the head metadata.

    ``goose_db_version`` (kept in step by every revision), goose's old ``migration_lock`` and
    the adoption record are bookkeeping, not drift; any other extra table is reported."""
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True, "include_name": _include_name},
    )
    diffs = compare_metadata(context, head_metadata(connection.dialect.name))
    lines: list[str] = []
    for diff in diffs:
        items = diff if isinstance(diff, list) else [diff]
        lines += [describe_diff(item) for item in items]
    return lines


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """The service's and this tool's bookkeeping tables are never drift."""
    return type_ != "table" or name not in NOT_COMPARED


def describe_diff(diff: tuple[Any, ...]) -> str:
    """One autogenerate diff tuple as a sentence."""
    kind = diff[0]
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, old, new = diff
        what = kind.removeprefix("modify_")
        return f"column {table}.{column}: {what} is {_show(old)}, head metadata says {_show(new)}"
    if kind in ("add_column", "remove_column"):
        table, column = diff[2], diff[3]
        state = "is missing" if kind == "add_column" else "is unexpected"
        return f"column {table}.{column.name} {state}"
    state = "is missing" if kind.startswith("add_") else "is unexpected"
    return f"{_noun(kind)} {_describe_object(diff[1])} {state}"


def _noun(kind: str) -> str:
    noun = kind.split("_", 1)[1]
    return {"fk": "foreign key", "constraint": "constraint"}.get(noun, noun)


def _describe_object(obj: Any) -> str:
    table = getattr(obj, "table", None)
    name = getattr(obj, "name", None) or "(unnamed)"
    columns = [column.name for column in getattr(obj, "columns", [])]
    if table is None:
        return str(name)
    shown = f" ({', '.join(columns)})" if columns else ""
    return f"{name}{shown} on {table.name}"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = getattr(value, "arg", value)
    return str(getattr(text, "text", text))
