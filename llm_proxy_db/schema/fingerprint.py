"""A schema fingerprint: what a live database's tables look like, normalised for comparison.

Two databases with the same fingerprint have the same tables, columns (normalised type,
nullability, default, primary-key membership), unique constraints, foreign keys (with their
ON DELETE action), indexes and CHECK constraints.  Everything comes from SQLAlchemy's
inspector; what differs only in spelling between dialects or between ``CREATE TABLE`` and
``ALTER TABLE`` is normalised away:

- column order (columns are a mapping), primary-key and foreign-key names, and the implicit
  indexes that back primary keys and unique constraints (PostgreSQL's ``projects_name_key``
  index, SQLite's ``sqlite_autoindex_*``).  The names of PostgreSQL CHECK and UNIQUE
  constraints do count: revisions drop them by name;
- type spellings: ``DATETIME``/``TIMESTAMP`` -> ``datetime``, ``TEXT``/``VARCHAR`` -> ``text``;
- defaults: ``1``/``true`` on a boolean -> ``true``, ``now()`` -> ``current_timestamp``,
  casts (``'x'::text``) and wrapping parentheses dropped;
- MySQL: ``TINYINT(1)`` -> ``boolean``, ``CURRENT_TIMESTAMP(6)`` -> ``current_timestamp``, CHECKs
  read from ``information_schema`` (MariaDB's column-level ones included), constraint names
  counted as on PostgreSQL (the MySQL 8 ``audit_events_chk_1`` must be told apart);
- CHECKs: PostgreSQL's ``outcome = ANY (ARRAY['success'::text, ...])`` and SQLite's
  ``outcome IN ('success', ...)`` both become ``outcome IN ('failure', 'success')``.

A view, materialized view, partitioned or foreign table, sequence, index or type named like
one of our tables is not that table: it is recorded in ``other_kinds`` (compared, so no
known state matches it) and the table counts as missing.

Only our tables are fingerprinted; every other table (``alembic_version``,
``goose_db_version``, ``migration_lock``, ``sqlite_sequence``, a user's own) is listed in
``other_tables``, which takes no part in comparisons (a SQLite backup's
``llm_proxy_backup_origin``, carried by a backup copied into place, is not even listed).  Nullability is compared as the
database reports it: on SQLite a ``TEXT PRIMARY KEY`` column is nullable, as in the
service's DDL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.base import BACKUP_ORIGIN_TABLE

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

OUR_TABLES = ("projects", "tokens", "audit_events")
# The tool's own record in a SQLite backup (a backup copied into place carries it): not even listed.
TOOL_BOOKKEEPING = (BACKUP_ORIGIN_TABLE,)


@dataclass(frozen=True)
class ColumnPrint:
    """One column: normalised type, nullability, normalised default, primary-key membership."""

    type: str
    nullable: bool
    default: str | None
    primary_key: bool


@dataclass(frozen=True)
class IndexPrint:
    """One explicit index: its columns in order and whether it is unique."""

    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class ForeignKeyPrint:
    """One foreign key with its ON DELETE action (``NO ACTION`` when none was given)."""

    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    ondelete: str

    def describe(self) -> str:
        """``tokens(project_id) -> projects(id) ON DELETE CASCADE`` without the table prefix."""
        referred = f"{self.referred_table}({', '.join(self.referred_columns)})"
        return f"({', '.join(self.columns)}) -> {referred} ON DELETE {self.ondelete}"


@dataclass(frozen=True)
class TablePrint:
    """One table: columns by name, unique column sets, foreign keys, indexes by name, CHECKs.

    ``constraint_names`` (PostgreSQL and MySQL) are the names of the CHECK and UNIQUE constraints:
    revisions drop those by name (``audit_events_outcome_check``, ``tokens_token_unique``),
    so a database that names them differently must not be stamped.
    """

    columns: Mapping[str, ColumnPrint]
    unique: frozenset[tuple[str, ...]] = frozenset()
    foreign_keys: frozenset[ForeignKeyPrint] = frozenset()
    indexes: Mapping[str, IndexPrint] = field(default_factory=dict)
    checks: frozenset[str] = frozenset()
    constraint_names: frozenset[str] = frozenset()

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary-key columns, sorted by name."""
        return tuple(sorted(name for name, column in self.columns.items() if column.primary_key))


@dataclass(frozen=True)
class Fingerprint:
    """Our tables by name; ``other_tables`` is reported but never compared."""

    tables: Mapping[str, TablePrint]
    other_tables: tuple[str, ...] = field(default=(), compare=False)
    #: Objects named like one of our tables that are not plain tables (``audit_events`` ->
    #: ``view``): compared, so no known state ever matches them.
    other_kinds: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when none of our tables exists, nor anything else under one of their names."""
        return not self.tables and not self.other_kinds

    def with_column(self, table: str, name: str, column: ColumnPrint) -> Fingerprint:
        """A copy with ``table.name`` added (or replaced)."""
        old = self.tables[table]
        return self._with_table(table, replace(old, columns={**old.columns, name: column}))

    def with_renamed_column(self, table: str, old_name: str, new_name: str) -> Fingerprint:
        """A copy with ``table.old_name`` called ``new_name`` (nothing refers to it by name)."""
        old = self.tables[table]
        columns = {new_name if name == old_name else name: col for name, col in old.columns.items()}
        return self._with_table(table, replace(old, columns=columns))

    def _with_table(self, name: str, table: TablePrint) -> Fingerprint:
        return replace(self, tables={**self.tables, name: table})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, sorted so that equal fingerprints serialise identically."""
        found: dict[str, Any] = {
            "tables": {name: _table_dict(self.tables[name]) for name in sorted(self.tables)},
            "other_tables": list(self.other_tables),
        }
        if self.other_kinds:
            found["other_kinds"] = dict(sorted(self.other_kinds.items()))
        return found


def fingerprint(connection: Connection) -> Fingerprint:
    """The fingerprint of the database on ``connection`` (tables visible on the search path)."""
    import sqlalchemy as sa  # the Fingerprint type alone (fast adopt --dry-run) needs no SQLAlchemy: start-up time

    inspector = sa.inspect(connection)
    names = inspector.get_table_names()
    dialect = dialect_for(connection)
    kinds = misnamed_objects(connection, names)  # a view named audit_events, ...
    ours = [name for name in OUR_TABLES if name in names and name not in kinds]
    others = tuple(sorted(name for name in names if name not in OUR_TABLES and name not in TOOL_BOOKKEEPING))
    if not ours:
        return Fingerprint(tables={}, other_tables=others, other_kinds=kinds)
    reflected = _reflect(inspector, ours, dialect.INDEX_REFLECTION_OPTIONS)
    checks = dialect.reflect_checks(connection, ours)
    if checks is not None:  # where SQLAlchemy's reflection misses some (MariaDB's column CHECKs)
        reflected["checks"] = {(None, name): found for name, found in checks.items()}
    named = dialect.NAMED_CONSTRAINTS
    tables = {
        name: _table({kind: found[(None, name)] for kind, found in reflected.items()}, named)
        for name in ours
    }
    return Fingerprint(tables=tables, other_tables=others, other_kinds=kinds)


def our_tables_present(connection: Connection) -> bool:
    """Whether any of our tables exists, or anything under one of their names (cheaper than a
    whole fingerprint)."""
    import sqlalchemy as sa  # the Fingerprint type alone needs no SQLAlchemy: start-up time

    if set(sa.inspect(connection).get_table_names()) & set(OUR_TABLES):
        return True
    return bool(dialect_for(connection).relations_named(connection, OUR_TABLES))


def service_object_names(connection: Connection) -> tuple[str, ...]:
    """The names of the service's indexes and named constraints (the head schema's): a
    relation of another kind under one of them blocks the revision that creates it."""
    from llm_proxy_db.schema.head import head_metadata  # SQLAlchemy, for this only: start-up time

    metadata = head_metadata(dialect_for(connection).SQLALCHEMY_NAME)
    names: set[str] = {str(index.name) for table in metadata.tables.values() for index in table.indexes if index.name}
    names |= {
        str(constraint.name) for table in metadata.tables.values()
        for constraint in table.constraints if isinstance(constraint.name, str)
    }
    return tuple(sorted(names - set(OUR_TABLES)))


_INDEX_KINDS = ("index", "partitioned index")


def misnamed_objects(connection: Connection, tables: list[str]) -> dict[str, str]:
    """``name -> kind``: what carries the name of one of our tables without being that plain
    table, or the name of one of the service's indexes or constraints without being an index
    (a sequence, a view, a table: ``tables`` are the plain tables there)."""
    others = service_object_names(connection)
    found = dialect_for(connection).relations_named(connection, (*OUR_TABLES, *others))
    kinds = {name: kind for name, kind in found.items() if name in OUR_TABLES or kind not in _INDEX_KINDS}
    kinds.update({name: "table" for name in others if name in tables})
    return kinds


def _reflect(inspector: Any, names: list[str], index_options: Mapping[str, Any]) -> dict[str, dict[Any, Any]]:
    """Everything about ``names`` in one query per kind (PostgreSQL reflects in bulk)."""
    return {
        "columns": inspector.get_multi_columns(filter_names=names),
        "pk": inspector.get_multi_pk_constraint(filter_names=names),
        "unique": inspector.get_multi_unique_constraints(filter_names=names),
        "fks": inspector.get_multi_foreign_keys(filter_names=names),
        "indexes": inspector.get_multi_indexes(filter_names=names, **index_options),
        "checks": inspector.get_multi_check_constraints(filter_names=names),
    }


def _table(found: dict[str, Any], named: bool) -> TablePrint:
    pk = set(found["pk"].get("constrained_columns") or ())
    names = {c["name"] for c in [*found["checks"], *found["unique"]] if c.get("name")}
    return TablePrint(
        columns={info["name"]: _column(info, info["name"] in pk) for info in found["columns"]},
        unique=_unique(found["unique"], found["indexes"], pk),
        foreign_keys=frozenset(_foreign_key(fk) for fk in found["fks"]),
        indexes=_indexes(found["indexes"]),
        checks=frozenset(normalise_check(check["sqltext"]) for check in found["checks"]),
        constraint_names=frozenset(names) if named else frozenset(),
    )


def _column(info: Mapping[str, Any], primary_key: bool) -> ColumnPrint:
    type_name = normalise_type(info["type"])
    return ColumnPrint(
        type=type_name,
        nullable=bool(info["nullable"]),
        default=normalise_default(info.get("default"), type_name),
        primary_key=primary_key,
    )


def _unique(
    constraints: list[dict[str, Any]], indexes: list[dict[str, Any]], pk: set[str]
) -> frozenset[tuple[str, ...]]:
    """Unique constraints, plus SQLite's unique autoindexes (a column-level ``UNIQUE``)."""
    found = {tuple(sorted(u["column_names"])) for u in constraints}
    for index in indexes:
        columns = tuple(sorted(index["column_names"]))
        if _is_autoindex(index) and set(columns) != pk:
            found.add(columns)
    return frozenset(found)


def _is_autoindex(index: dict[str, Any]) -> bool:
    return str(index["name"]).startswith("sqlite_autoindex_")


def _indexes(indexes: list[dict[str, Any]]) -> dict[str, IndexPrint]:
    """Explicit indexes only: those backing a constraint are part of the constraint."""
    return {
        index["name"]: IndexPrint(
            columns=tuple(
                column or expression
                for column, expression in zip(
                    index["column_names"],
                    index.get("expressions") or [None] * len(index["column_names"]),
                    strict=False,
                )
            ),
            unique=bool(index["unique"]),
        )
        for index in indexes
        if "duplicates_constraint" not in index and not _is_autoindex(index)
    }


def _foreign_key(fk: Mapping[str, Any]) -> ForeignKeyPrint:
    ondelete = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
    return ForeignKeyPrint(
        columns=tuple(fk["constrained_columns"]),
        referred_table=fk["referred_table"],
        referred_columns=tuple(fk["referred_columns"]),
        ondelete=ondelete,
    )


def normalise_type(type_: sa.types.TypeEngine[Any]) -> str:
    """A dialect-independent type name: text, integer, bigint, boolean, datetime, uuid, ..."""
    import sqlalchemy as sa  # the Fingerprint type alone (fast adopt --dry-run) needs no SQLAlchemy: start-up time

    if isinstance(type_, sa.Boolean) or _is_mysql_boolean(type_):
        return "boolean"
    if isinstance(type_, sa.DateTime):
        return "datetime with time zone" if type_.timezone else "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.BigInteger):
        return "bigint"
    if isinstance(type_, sa.Integer):
        return "integer"
    if isinstance(type_, sa.Uuid):
        return "uuid"
    if isinstance(type_, sa.String):
        return "text"
    return str(type_).lower()


def _is_mysql_boolean(type_: sa.types.TypeEngine[Any]) -> bool:
    """MySQL's BOOLEAN is ``TINYINT(1)``."""
    return type(type_).__name__ == "TINYINT" and getattr(type_, "display_width", None) == 1


_CAST = re.compile(
    r"::(?:character varying|timestamp (?:with|without) time zone|double precision|[a-z_]+)"
    r"(?:\[\])?",
    re.IGNORECASE,
)
_BOOLEAN_DEFAULTS = {
    "1": "true",
    "true": "true",
    "t": "true",
    "0": "false",
    "false": "false",
    "f": "false",
}
_NOW = {"now()", "current_timestamp", "current_timestamp()", "datetime('now')", "current_timestamp(6)"}


def normalise_default(raw: str | None, type_name: str = "") -> str | None:
    """A server default without casts, wrapping parentheses or spelling differences."""
    if raw is None:
        return None
    text = _strip_parens(_CAST.sub("", raw.strip()))
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        text = text[1:-1].replace("''", "'")
    lowered = text.lower()
    if type_name == "boolean" and lowered in _BOOLEAN_DEFAULTS:
        return _BOOLEAN_DEFAULTS[lowered]
    if lowered in _NOW:
        return "current_timestamp"
    return lowered if re.fullmatch(r"[\w().]+", text) else text


_IN_LIST = re.compile(r'^"?(\w+)"?\s+IN\s*\((.*)\)$', re.IGNORECASE | re.DOTALL)
_ANY_ARRAY = re.compile(
    r'^\(?"?(\w+)"?\)?\s*=\s*ANY\s*\(\s*\(?\s*ARRAY\s*\[(.*)\]\s*\)?\s*\)$',
    re.IGNORECASE | re.DOTALL,
)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def normalise_check(sqltext: str) -> str:
    """A CHECK body in one canonical form; ``col IN (...)`` lists become sorted value sets."""
    text = _strip_parens(" ".join(sqltext.split()))
    for pattern in (_IN_LIST, _ANY_ARRAY):
        match = pattern.match(_strip_parens(_CAST.sub("", text)))
        if match:
            values = sorted(value.replace("''", "'") for value in _QUOTED.findall(match.group(2)))
            rendered = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
            return f"{match.group(1)} IN ({rendered})"
    return _strip_parens(_CAST.sub("", text)).lower()


def _strip_parens(text: str) -> str:
    """Drop parentheses that wrap the whole expression, however many."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _table_dict(table: TablePrint) -> dict[str, Any]:
    return {
        "columns": {
            name: {
                "type": col.type,
                "nullable": col.nullable,
                "default": col.default,
                "primary_key": col.primary_key,
            }
            for name, col in sorted(table.columns.items())
        },
        "unique": sorted(list(columns) for columns in table.unique),
        "foreign_keys": sorted(fk.describe() for fk in table.foreign_keys),
        "indexes": {
            name: {"columns": list(index.columns), "unique": index.unique}
            for name, index in sorted(table.indexes.items())
        },
        "checks": sorted(table.checks),
        "constraint_names": sorted(table.constraint_names),
    }
