"""Drift of a live database: against the schema its recorded revision should have, or against
another live database (staging and production, any two dialects).

The expected schema of a revision is its known-state fingerprint on the database's own dialect
(:func:`~llm_proxy_db.adoption.known_states.revision_fingerprints`: committed data, or derived in
a scratch place).  Two databases are compared logically: the reference's deviations from *its*
revision are carried over to this dialect's fingerprint of that revision
(:func:`~llm_proxy_db.schema.schema_diff.translate`), and this database is compared with the
result.  So a SQLite file and a PostgreSQL database at the same revision show no drift, and an
index one of them lacks is named with the ``CREATE INDEX`` this database needs.

Every difference gets an origin:

- ``drift``: something of the revision's schema is missing or changed here (exit 9);
- ``reference_drift`` (two databases): this database has what the revision wants and the
  reference lacks it: the reference needs reconciling (exit 9);
- ``operator_addition``: an extra index, column, constraint or table an operator added; kept,
  reported, not drift (exit 0) unless ``strict``;
- ``service_artefact``: what a later release of the service leaves on an older SQLite file
  (:mod:`llm_proxy_db.service.artefacts`); not drift.

Tables known by name (``alembic_version``, ``goose_db_version``, ``migration_lock``,
``llm_proxy_*``) are listed as recognised, never compared.  Triggers are compared by name and
table (the service creates none: each is an operator's); views and grants are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from llm_proxy_db.adoption.known_states import revision_fingerprints
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import SchemaMismatchError
from llm_proxy_db.migration import revisions, unfinished_runs
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.schema.fingerprint import OUR_TABLES, Fingerprint, fingerprint
from llm_proxy_db.schema.reconcile import Reconciliation, reconcile
from llm_proxy_db.schema.schema_diff import CHANGED, EXTRA, MISSING, Difference, as_json, differences, translate
from llm_proxy_db.service import artefacts

DRIFT, REFERENCE_DRIFT = "drift", "reference_drift"
OPERATOR, SERVICE = "operator_addition", "service_artefact"
COUNTS_AS_DRIFT = frozenset({DRIFT, REFERENCE_DRIFT})


@dataclass(frozen=True)
class DriftItem:
    """One difference, where it comes from, and what would reconcile it."""

    difference: Difference
    origin: str
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``migrate drift --json``)."""
        d = self.difference
        return {
            "kind": d.kind, "object": d.object, "table": d.table or None, "name": d.name, "field": d.field,
            "actual": as_json(d.actual), "expected": as_json(d.expected), "origin": self.origin,
            "description": d.describe(), "statements": list(self.reconciliation.statements),
            "note": self.reconciliation.note, "safe": self.reconciliation.safe,
        }


@dataclass
class Side:
    """One live database: where it stands and what its revision says it should be."""

    description: str
    dialect: str
    revision: str | None
    actual: Fingerprint
    expected: Fingerprint
    triggers: frozenset[tuple[str, str]] = frozenset()  # (table, trigger): the service has none


@dataclass
class DriftReport:
    """The differences of a database from its reference, and the tables recognised by name."""

    database: Side
    reference: Side | None
    items: list[DriftItem]
    recognised: dict[str, str]
    strict: bool = False

    @property
    def drift(self) -> bool:
        """True when something must be reconciled (with ``strict``: when anything differs)."""
        return any(item.origin in COUNTS_AS_DRIFT or self.strict for item in self.items)

    @property
    def statements(self) -> list[str]:
        """Every statement that would reconcile this database's drift, in order."""
        return [sql for item in self.items if item.origin == DRIFT for sql in item.reconciliation.statements]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``migrate drift --json``)."""
        own = self.database
        reference: dict[str, Any] = {"kind": "revision", "revision": own.revision, "dialect": own.dialect}
        if self.reference is not None:
            reference = {"kind": "database", "database": self.reference.description,
                         "revision": self.reference.revision, "dialect": self.reference.dialect}
        return {
            "database": self.database.description, "dialect": self.database.dialect,
            "revision": self.database.revision, "reference": reference, "drift": self.drift,
            "strict": self.strict, "differences": [item.as_dict() for item in self.items],
            "statements": self.statements,
            "recognised_tables": [{"table": name, "what": what} for name, what in sorted(self.recognised.items())],
        }


def check(settings: Settings, against: Settings | None = None, *, strict: bool = False) -> DriftReport:
    """Compare the database of ``settings`` with its revision's schema, or with the database of
    ``against`` (its logical schema, on any dialect).  Reads only."""
    with connect(settings, create=False) as connection:
        side = read_side(connection, settings.describe())
        reference = None
        expected = side.expected
        if against is not None:
            with connect(against, create=False) as other:
                reference = read_side(other, against.describe())
            expected = _translated(connection, side, reference)
    items = _items(side, expected, reference)
    recognised = {name: what for name in side.actual.other_tables if (what := artefacts.known_table(name))}
    return DriftReport(side, reference, items, recognised, strict)


def read_side(connection: Connection, description: str) -> Side:
    """Where the database on ``connection`` stands; refuses an unversioned one that has tables,
    and one a restore or a downgrade left part-way (exit 6, saying how to finish it)."""
    current = current_revision(connection)
    connection.commit()
    revisions.position(current)  # a revision of a newer release is refused (exit 5)
    # A restore or a downgrade left part-way (MySQL): no revision's schema to compare with; the way is to finish it.
    unfinished_runs.refuse_reading(connection, f"compare {description}")
    actual = fingerprint(connection)
    if current is None and not actual.is_empty:
        raise SchemaMismatchError(
            f"{description} has the service's tables but no recorded revision: drift needs a revision to compare with",
            hint="see `llm-proxy-db migrate adopt --dry-run` (adoption compares it with every known state)",
        )
    expected = revision_fingerprints(connection)[current] if current else Fingerprint(tables={})
    rows = connection.exec_driver_sql(dialect_for(connection).TRIGGERS_SQL).fetchall()
    connection.rollback()
    triggers = frozenset((str(table), str(name)) for name, table in rows)
    return Side(description, connection.dialect.name, current, actual, expected, triggers)


def _translated(connection: Connection, side: Side, reference: Side) -> Fingerprint:
    """The reference's schema in this dialect's terms: this dialect's print of the reference's
    revision plus the reference's own deviations from it."""
    base = revision_fingerprints(connection)[reference.revision] if reference.revision else Fingerprint(tables={})
    deviations = differences(reference.actual, reference.expected)
    translated = translate(base, deviations, names=side.dialect == reference.dialect)
    others = tuple(name for name in reference.actual.other_tables if artefacts.known_table(name) is None)
    return Fingerprint(tables=translated.tables, other_tables=others)


def _items(side: Side, expected: Fingerprint, reference: Side | None) -> list[DriftItem]:
    found = [
        *differences(side.actual, expected),
        *_other_tables(side.actual, expected, reference is not None),
        *_triggers(side, reference),
    ]
    own_extras = {_key(d) for d in differences(side.actual, side.expected) if d.kind == EXTRA}
    items = [_item(d, side, own_extras if reference is not None else None) for d in found]
    if reference is not None and reference.revision != side.revision:
        revision = Difference(CHANGED, "revision", "", "alembic_version", side.revision, reference.revision)
        step = "up" if revisions.position(reference.revision) > revisions.position(side.revision) else "down"
        note = f"run `llm-proxy-db migrate {step} --to {reference.revision or 'base'}` here (or move the reference)"
        items.insert(0, DriftItem(revision, DRIFT, Reconciliation(note=note)))
    return items


def _other_tables(actual: Fingerprint, expected: Fingerprint, compare_both: bool) -> list[Difference]:
    """Tables that are not the service's nor known by name: an operator's (extra here, or only in the reference)."""
    mine = {name for name in actual.other_tables if artefacts.known_table(name) is None}
    theirs = set(expected.other_tables) if compare_both else set()
    return [
        Difference(EXTRA if name in mine else MISSING, "table", name, name)
        for name in sorted(mine ^ theirs)
    ]


def _triggers(side: Side, reference: Side | None) -> list[Difference]:
    """Triggers are never the service's: each one here (or only in the reference) is an operator's."""
    theirs = reference.triggers if reference is not None else frozenset()
    return [
        Difference(EXTRA if (table, name) in side.triggers else MISSING, "trigger", table, name)
        for table, name in sorted(side.triggers ^ theirs)
    ]


def _item(difference: Difference, side: Side, own_extras: set[tuple[Any, ...]] | None) -> DriftItem:
    origin = _origin(difference, side, own_extras)
    if origin == DRIFT:
        existing = None
        if difference.object == "column" and difference.kind == CHANGED:
            existing = side.actual.tables[difference.table].columns[difference.name]
        return DriftItem(difference, origin, reconcile(difference, side.dialect, existing))
    notes = {
        OPERATOR: "an operator's addition: kept; nothing to reconcile",
        SERVICE: "left by a later release of the service on an older file: expected, not drift",
        REFERENCE_DRIFT: "the revision has it and the reference lacks it: reconcile the reference",
    }
    return DriftItem(difference, origin, Reconciliation(note=notes[origin]))


def _origin(difference: Difference, side: Side, own_extras: set[tuple[Any, ...]] | None) -> str:
    if _is_service_artefact(difference, side):
        return SERVICE
    if difference.object == "trigger" or (difference.object == "table" and difference.table not in OUR_TABLES):
        return OPERATOR  # an operator's trigger or table, here or only in the reference
    if difference.kind != EXTRA:
        return DRIFT
    if own_extras is not None and _key(difference) not in own_extras:
        return REFERENCE_DRIFT
    return OPERATOR


def _is_service_artefact(difference: Difference, side: Side) -> bool:
    if not dialect_for(side.dialect).SERVICE_START_ARTEFACTS:
        return False
    if difference.object == "index":
        tokens = side.actual.tables.get("tokens")
        has_id = tokens is not None and "id" in tokens.columns
        return artefacts.is_artefact_index(difference.table, difference.name, difference.actual, has_id)
    if difference.object == "check":
        return artefacts.is_artefact_check(difference.table, difference.actual, difference.expected)
    return False


def _key(difference: Difference) -> tuple[Any, ...]:
    return (difference.object, difference.table, difference.name, difference.field)
