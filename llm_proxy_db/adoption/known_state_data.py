"""The known-state fingerprints committed as data, so adoption need not run the revisions.

Deriving each revision's fingerprint (:mod:`llm_proxy_db.adoption.known_states`) means running every
revision on a scratch database and reflecting it after each: the largest fixed cost of
``llm-proxy-db setup`` on an unversioned database (issue 11).  The results are committed instead,
one JSON file per dialect in ``llm_proxy_db/adoption/known_state_prints/``, written by
``scripts/update_known_states.py`` and keyed by server family (``sqlite``,
``postgresql-15``, ``mariadb-10.11``: see each dialect's ``server_family``).

The data is used only when it certainly describes the code that runs:

- the file records the checksum of every revision file it was derived from (the manifest's
  normalised SHA-256); a revision edited since makes the whole file stale;
- it records SQLAlchemy's ``major.minor`` (reflection is SQLAlchemy's);
- the server family must have an entry.

Otherwise :func:`load` returns None and the fingerprints are derived as before (correct,
slower).  ``tests/test_known_state_data.py`` derives them on SQLite, PostgreSQL and MariaDB and
compares with the files, and ``llm-proxy-db migrate verify`` compares the fingerprints of its
scratch databases with them, so the data cannot go stale unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_proxy_db.adoption.known_state_files import (  # noqa: F401 (re-exported)
    DATA_DIR,
    UPDATE_COMMAND,
    data_file,
    revision_checksums,
    sqlalchemy_series,
    stale_files,
)
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.schema.fingerprint import ColumnPrint, Fingerprint, ForeignKeyPrint, IndexPrint, TablePrint
from llm_proxy_db.schema.fingerprint_diff import diff

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_loaded: dict[tuple[str, str], dict[str, Fingerprint] | None] = {}


def family_of(connection: Connection) -> str:
    """The server family of ``connection`` (the key of its entry)."""
    return dialect_for(connection).server_family(connection)


def load(connection: Connection) -> dict[str, Fingerprint] | None:
    """The committed fingerprints for ``connection``'s server family, or None when there are
    none or they may not describe the revisions that run (see :func:`unusable_reason`)."""
    key = (connection.dialect.name, family_of(connection))
    if key not in _loaded:
        _loaded[key] = _read(*key)[0]
    return _loaded[key]


def unusable_reason(dialect_name: str, family: str, directory: Path | None = None) -> str | None:
    """Why the committed data for ``family`` cannot be used (None: it can)."""
    return _read(dialect_name, family, directory)[1]


def _read(
    dialect_name: str, family: str, directory: Path | None = None
) -> tuple[dict[str, Fingerprint] | None, str | None]:
    path = data_file(dialect_name, directory)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (OSError, ValueError) as exc:
        return None, f"{path.name} cannot be read: {exc}"
    if document.get("sqlalchemy") != sqlalchemy_series():
        return None, f"{path.name} was made with SQLAlchemy {document.get('sqlalchemy')}, this is {sqlalchemy_series()}"
    if document.get("revision_files") != revision_checksums():
        return None, f"{path.name} was derived from other revision files than these"
    entry = document.get("families", {}).get(family)
    if entry is None:
        return None, f"{path.name} has no entry for {family}"
    try:
        return {rev: from_data(data) for rev, data in entry["fingerprints"].items()}, None
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{path.name} entry {family} is malformed: {exc!r}"


def write(
    dialect_name: str,
    family: str,
    server_version: str,
    prints: dict[str, Fingerprint],
    directory: Path | None = None,
) -> list[str]:
    """Record ``prints`` for ``family``; returns the families dropped because they were
    derived from other revision files or another SQLAlchemy series."""
    path = data_file(dialect_name, directory)
    checksums, series = revision_checksums(), sqlalchemy_series()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = {}
    families: dict[str, Any] = document.get("families", {})
    dropped: list[str] = []
    if document.get("revision_files") != checksums or document.get("sqlalchemy") != series:
        dropped = sorted(name for name in families if name != family)
        families = {}
    families[family] = {
        "server_version": server_version,
        "fingerprints": {rev: to_data(prints[rev]) for rev in sorted(prints)},
    }
    document = {
        "about": "Known-state fingerprints of every revision (llm_proxy_db/adoption/known_state_data.py). "
        f"Generated, never edited: {UPDATE_COMMAND}",
        "sqlalchemy": series,
        "revision_files": checksums,
        "families": {name: families[name] for name in sorted(families)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_render(document), encoding="utf-8")
    _loaded.clear()
    return dropped


def _render(value: Any, depth: int = 0) -> str:
    """Indented JSON with each list of plain values (a column, an index) on one line, for review."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(key)}: {_render(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}" + ("\n" if depth == 0 else "")
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        items = [f"{inner}{_render(item, depth + 1)}" for item in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def differences(committed: dict[str, Fingerprint], derived: dict[str, Fingerprint]) -> list[str]:
    """Revision by revision, how the committed fingerprints differ from the derived ones."""
    problems = []
    for revision in sorted(set(committed) | set(derived)):
        if revision not in committed or revision not in derived:
            where = "committed data" if revision not in committed else "the revisions"
            problems.append(f"revision {revision} is missing from {where}")
        elif committed[revision] != derived[revision]:
            found = diff(derived[revision], committed[revision])
            problems.append(f"revision {revision}: {'; '.join(found) or 'differs'}")
    return problems


def to_data(print_: Fingerprint) -> dict[str, Any]:
    """A fingerprint as plain JSON values (every set sorted, so equal prints serialise alike)."""
    return {name: _table_data(print_.tables[name]) for name in sorted(print_.tables)}


def from_data(data: dict[str, Any]) -> Fingerprint:
    """The fingerprint :func:`to_data` wrote."""
    return Fingerprint(tables={name: _table_from(table) for name, table in data.items()})


def _table_data(table: TablePrint) -> dict[str, Any]:
    return {
        "columns": {
            name: [col.type, col.nullable, col.default, col.primary_key]
            for name, col in sorted(table.columns.items())
        },
        "unique": sorted(list(columns) for columns in table.unique),
        "foreign_keys": sorted(
            [list(fk.columns), fk.referred_table, list(fk.referred_columns), fk.ondelete]
            for fk in table.foreign_keys
        ),
        "indexes": {name: [list(index.columns), index.unique] for name, index in sorted(table.indexes.items())},
        "checks": sorted(table.checks),
        "constraint_names": sorted(table.constraint_names),
    }


def _table_from(data: dict[str, Any]) -> TablePrint:
    return TablePrint(
        columns={name: ColumnPrint(*values) for name, values in data["columns"].items()},
        unique=frozenset(tuple(columns) for columns in data["unique"]),
        foreign_keys=frozenset(
            ForeignKeyPrint(tuple(cols), table, tuple(referred), ondelete)
            for cols, table, referred, ondelete in data["foreign_keys"]
        ),
        indexes={name: IndexPrint(tuple(cols), unique) for name, (cols, unique) in data["indexes"].items()},
        checks=frozenset(data["checks"]),
        constraint_names=frozenset(data["constraint_names"]),
    )
