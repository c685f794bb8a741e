"""Every database shape the service's releases leave in the field, generated from their start-ups.

The service changes its database only at start-up (reference ``llm-proxy-schema.md``, section
3b), and a release runs on whatever an earlier release left.  So the shapes in the field are
the closure of "start a later release on it": for every subsequence of the release list
(oldest first), start each release in turn on one database.  Each release's start-up is a
function below, written from the reference's facts:

SQLite (``SQLITE_RELEASES``)
    2025-05-21 L0, 2025-08-13 L1 (``CREATE TABLE IF NOT EXISTS``), 2025-08-14 L2 (columns
    inside ``CREATE TABLE`` for a new file, ``ALTER TABLE ... ADD COLUMN`` appended for an old
    one), 2025-12-02 goose files 1-3 plus ``migration_lock`` (file 1 fails on every older
    file: the seed row 0 stays, nothing else), 2025-12-14 / 2026-01-01 / 2026-01-03 the
    release's head ``schema.sql`` with ``IF NOT EXISTS`` (token-id head; ``api_key`` from
    2026-01-01; the four-value outcome CHECK from 2026-01-03).
PostgreSQL (``POSTGRES_RELEASES``)
    2025-12-02 goose 1-3, 2025-12-14 goose 1-4, 2026-01-01 goose 1-5, 2026-01-03 goose 1-6;
    from 2026-01-01 a new database's file 1 says ``api_key``.  Goose applies every file above
    the recorded version, each in its own transaction.  The outcome on PostgreSQL depends only
    on the recorded version and on whether file 1 said ``api_key`` (file 5 then renames
    nothing), and both ways reach the same catalog, so the closure is computed on that pair;
    the older goose shapes of section 3 (versions 1 and 2, and ``api_key`` databases stopped
    at 1-4) come from ``tests/legacy.py``.

SQLite shapes are deduplicated by a physical key (every ``sqlite_master`` entry's SQL, plus the
goose versions recorded): the L2 column-order variants stay distinct.  ``working_for`` names
the releases whose code can serve the shape (every column its queries name exists, the
outcomes it writes are allowed, and for 2025-12-02 goose reached version 3); the others are
broken at run time, which is why operators bring them to this tool.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from tests import legacy
from tests.seed import seed

FIXTURES = Path(__file__).parent / "fixtures"
FOUR_OUTCOMES = ("success", "failure", "denied", "error")
TWO_OUTCOMES = ("success", "failure")


# --- the DDL of the releases, from the reference ---------------------------------------------

def _if_not_exists(sql: str) -> list[str]:
    """``CREATE TABLE``/``CREATE INDEX`` statements of ``sql`` with ``IF NOT EXISTS``."""
    out = []
    for statement in legacy.statements(sql):
        statement = re.sub(r"^CREATE TABLE (?!IF)", "CREATE TABLE IF NOT EXISTS ", statement)
        out.append(re.sub(r"^CREATE INDEX (?!IF)", "CREATE INDEX IF NOT EXISTS ", statement))
    return out


def _l0_l1() -> tuple[str, str]:
    return legacy._sqlite_l0_l1()


def _head_sql(*, api_key: bool, four_values: bool) -> str:
    """A schema.sql release's head: section 4, older releases with their column name / CHECK."""
    text = (FIXTURES / "head_sqlite.sql").read_text()
    if not api_key:
        text = text.replace("  api_key TEXT NOT NULL,", "  openai_api_key TEXT NOT NULL,")
    if not four_values:
        text = text.replace("('success','failure','denied','error')", "('success', 'failure')")
    return text


L2_COLUMNS = (
    ("projects", "is_active", "BOOLEAN NOT NULL DEFAULT 1"),
    ("projects", "deactivated_at", "DATETIME"),
    ("tokens", "deactivated_at", "DATETIME"),
)
MIGRATION_LOCK_SQL = (
    "CREATE TABLE IF NOT EXISTS migration_lock (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "locked BOOLEAN NOT NULL DEFAULT 0, locked_at DATETIME, locked_by TEXT, process_id INTEGER)"
)


def _goose_sqlite_files() -> list[list[str]]:
    """The SQLite goose files 1-3 of the 2025-12-02 release (reference section 3b)."""
    l0, l1 = _l0_l1()
    without = l0.replace("  is_active BOOLEAN NOT NULL DEFAULT 1,\n", "", 1)  # tokens' is_active
    creates = [s for s in _if_not_exists(without) if s.startswith("CREATE TABLE")]
    indexes = [s for s in _if_not_exists(without) if s.startswith("CREATE INDEX")]
    file_1 = [
        *creates,
        "ALTER TABLE projects ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT 1",
        "ALTER TABLE tokens ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT 1",
        *indexes,
        *_if_not_exists(l1),
    ]
    file_2 = [
        "ALTER TABLE projects ADD COLUMN deactivated_at DATETIME",
        "ALTER TABLE tokens ADD COLUMN deactivated_at DATETIME",
    ]
    file_3 = ["ALTER TABLE tokens ADD COLUMN cache_hit_count INTEGER NOT NULL DEFAULT 0"]
    return [file_1, file_2, file_3]


# --- SQLite start-ups (each on a stdlib connection in autocommit mode) ------------------------

SqliteStart = Callable[[sqlite3.Connection], None]


def _run(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        db.execute(statement)


def start_l0(db: sqlite3.Connection) -> None:
    """2025-05-21: the L0 tables and indexes, ``IF NOT EXISTS``."""
    _run(db, _if_not_exists(_l0_l1()[0]))


def start_l1(db: sqlite3.Connection) -> None:
    """2025-08-13: L0 plus ``audit_events`` (two-value CHECK) and its 7 indexes."""
    l0, l1 = _l0_l1()
    _run(db, _if_not_exists(l0 + l1))


def start_l2(db: sqlite3.Connection) -> None:
    """2025-08-14: L2 columns inside CREATE TABLE for a new file, appended by ALTER otherwise."""
    l0, l1 = _l0_l1()
    _run(db, _if_not_exists(legacy._l2_fresh(l0, l1)))
    for table, column, ddl in L2_COLUMNS:
        present = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
        if column not in present:
            db.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {ddl}')


def start_goose(db: sqlite3.Connection) -> None:
    """2025-12-02: the lock row, goose's table with its seed row, files 1-3 above the version.

    Each file runs in its own transaction; the first that fails rolls back and stops goose
    (the service does not start; the file keeps what earlier files did).
    """
    db.execute(MIGRATION_LOCK_SQL)
    db.execute("INSERT OR IGNORE INTO migration_lock (id, locked) VALUES (1, 0)")
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'goose_db_version'").fetchone():
        db.execute(legacy.GOOSE_TABLE_SQL["sqlite"])
        db.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1)")
    current = db.execute("SELECT max(version_id) FROM goose_db_version WHERE is_applied").fetchone()[0]
    for version, statements in enumerate(_goose_sqlite_files(), start=1):
        if version <= current:
            continue
        db.execute("BEGIN")
        try:
            _run(db, statements)
        except sqlite3.OperationalError:
            db.execute("ROLLBACK")
            return
        db.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)", (version,))
        db.execute("COMMIT")


def _schema_sql(*, api_key: bool, four_values: bool) -> SqliteStart:
    def start(db: sqlite3.Connection) -> None:
        _run(db, _if_not_exists(_head_sql(api_key=api_key, four_values=four_values)))

    return start


@dataclass(frozen=True)
class Release:
    """One service release: its date, its start-up, and what its code needs to serve."""

    date: str
    start: Any
    columns: dict[str, frozenset[str]]
    writes_four_outcomes: bool = False
    needs_goose: int | None = None


def _needs(projects: str, tokens: str, audit: bool = True) -> dict[str, frozenset[str]]:
    l0_projects = "id name created_at updated_at "
    l0_tokens = "token project_id expires_at is_active request_count max_requests created_at last_used_at "
    needs = {"projects": frozenset((l0_projects + projects).split()),
             "tokens": frozenset((l0_tokens + tokens).split())}
    if audit:
        needs["audit_events"] = frozenset(["id", "outcome"])
    return needs


SQLITE_RELEASES: tuple[Release, ...] = (
    Release("2025-05-21", start_l0, _needs("openai_api_key", "", audit=False)),
    Release("2025-08-13", start_l1, _needs("openai_api_key", "")),
    Release("2025-08-14", start_l2, _needs("openai_api_key is_active deactivated_at", "deactivated_at")),
    Release("2025-12-02", start_goose,
            _needs("openai_api_key is_active deactivated_at", "deactivated_at cache_hit_count"),
            needs_goose=3),
    Release("2025-12-14", _schema_sql(api_key=False, four_values=False),
            _needs("openai_api_key is_active deactivated_at", "id deactivated_at cache_hit_count")),
    Release("2026-01-01", _schema_sql(api_key=True, four_values=False),
            _needs("api_key is_active deactivated_at", "id deactivated_at cache_hit_count")),
    Release("2026-01-03", _schema_sql(api_key=True, four_values=True),
            _needs("api_key is_active deactivated_at", "id deactivated_at cache_hit_count"),
            writes_four_outcomes=True),
)


# --- the closure ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldShape:
    """A database the field holds: the releases that made it, in order, and what it is."""

    dialect: str
    releases: tuple[str, ...]
    origins: tuple[tuple[str, ...], ...]
    working_for: tuple[str, ...]
    four_outcomes: bool
    goose_version: int | None = None
    postgres_api_key: bool = False

    @property
    def name(self) -> str:
        """The shortest release sequence that makes it, e.g. ``2025-05-21+2026-01-03``."""
        return "+".join(self.releases)

    @property
    def id(self) -> str:
        """The pytest id."""
        return f"{self.dialect}-{self.name}"

    @property
    def origin(self) -> str:
        """``created`` (one release made it as it is) or ``later-start`` (several did)."""
        return "created" if len(self.releases) == 1 else "later-start"


def run_sqlite(path: Path | str, releases: Sequence[str]) -> None:
    """Start each release of ``releases`` (dates) in turn on the SQLite file at ``path``."""
    by_date = {release.date: release for release in SQLITE_RELEASES}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for date in releases:
            by_date[date].start(db)
    finally:
        db.close()


def _physical_key(db: sqlite3.Connection) -> tuple[Any, ...]:
    entries = sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"), key=repr)
    goose = ()
    if any(name == "goose_db_version" for _, name, _, _ in entries):
        goose = tuple(r[0] for r in db.execute("SELECT version_id FROM goose_db_version ORDER BY 1"))
    return (tuple(entries), goose)


def _facts(db: sqlite3.Connection) -> tuple[dict[str, set[str]], bool, int | None]:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {t: {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}
    audit = db.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_events'").fetchone()
    four = bool(audit and "'denied'" in audit[0])
    goose = None
    if "goose_db_version" in tables:
        goose = db.execute("SELECT max(version_id) FROM goose_db_version WHERE is_applied").fetchone()[0]
    return columns, four, goose


def _working_for(columns: dict[str, set[str]], four: bool, goose: int | None) -> tuple[str, ...]:
    def works(release: Release) -> bool:
        if any(not need <= columns.get(table, set()) for table, need in release.columns.items()):
            return False
        if release.writes_four_outcomes and not four:
            return False
        return release.needs_goose is None or (goose or 0) >= release.needs_goose

    return tuple(release.date for release in SQLITE_RELEASES if works(release))


_sqlite_cache: list[FieldShape] = []


def sqlite_shapes() -> list[FieldShape]:
    """Every SQLite field shape, one per physical shape, shortest release sequence first."""
    if _sqlite_cache:
        return list(_sqlite_cache)
    found: dict[tuple[Any, ...], list[tuple[str, ...]]] = {}
    facts: dict[tuple[Any, ...], tuple[dict[str, set[str]], bool, int | None]] = {}
    dates = [release.date for release in SQLITE_RELEASES]
    for size in range(1, len(dates) + 1):
        for sequence in itertools.combinations(dates, size):
            db = sqlite3.connect(":memory:", isolation_level=None)
            for date in sequence:
                next(r for r in SQLITE_RELEASES if r.date == date).start(db)
            key = _physical_key(db)
            found.setdefault(key, []).append(sequence)
            facts.setdefault(key, _facts(db))
            db.close()
    for key, sequences in found.items():
        columns, four, goose = facts[key]
        _sqlite_cache.append(
            FieldShape("sqlite", sequences[0], tuple(sequences), _working_for(columns, four, goose),
                       four, goose)
        )
    return list(_sqlite_cache)


POSTGRES_RELEASES = (("2025-12-02", 3), ("2025-12-14", 4), ("2026-01-01", 5), ("2026-01-03", 6))


def postgres_shapes() -> list[FieldShape]:
    """The closure on PostgreSQL: (file 1 said api_key, goose version reached) per sequence."""
    found: dict[tuple[int, bool], list[tuple[str, ...]]] = {}
    for size in range(1, len(POSTGRES_RELEASES) + 1):
        for sequence in itertools.combinations(POSTGRES_RELEASES, size):
            api_key = sequence[0][1] >= 5  # from 2026-01-01 a new database says api_key
            version = sequence[-1][1]
            # goose 5 renames openai_api_key: past version 5 both origins are one catalog
            key = (version, api_key and version < 5)
            found.setdefault(key, []).append(tuple(date for date, _ in sequence))
    return [
        FieldShape("postgresql", seqs[0], tuple(seqs), (seqs[0][-1],), version >= 6, version,
                   postgres_api_key=api_key)
        for (version, api_key), seqs in sorted(found.items())
    ]


def postgres_statements(shape: FieldShape) -> list[str]:
    """The DDL and goose rows that make ``shape`` (goose files 1..version)."""
    first_api_key = shape.releases[0] >= "2026-01-01"
    legacy_shape = legacy._pg_shape(legacy._pg_goose_steps(), shape.goose_version or 0, first_api_key)
    return list(legacy_shape.statements)


# --- building and seeding ---------------------------------------------------------------------

def build(settings: Settings, shape: FieldShape) -> None:
    """Make ``shape`` at ``settings`` by replaying its releases, then seed rows it can hold."""
    if shape.dialect == "sqlite":
        assert settings.database_path is not None
        settings.database_path.parent.mkdir(parents=True, exist_ok=True)
        run_sqlite(settings.database_path, shape.releases)
    else:
        with connect(settings) as connection:
            for statement in postgres_statements(shape):
                connection.exec_driver_sql(statement)
            connection.commit()
    with connect(settings) as connection:
        seed(connection, outcomes=FOUR_OUTCOMES if shape.four_outcomes else TWO_OUTCOMES)


def counts_by_origin() -> dict[str, int]:
    """How many shapes each dialect and origin has (for the report and docs)."""
    counts: dict[str, int] = {}
    for shape in [*sqlite_shapes(), *postgres_shapes()]:
        key = f"{shape.dialect} {shape.origin}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def params(dialects: tuple[str, ...] = ("sqlite", "postgresql")) -> list[Any]:
    """Every generated shape as a pytest parameter."""
    shapes = [*(sqlite_shapes() if "sqlite" in dialects else []),
              *(postgres_shapes() if "postgresql" in dialects else [])]
    return [
        pytest.param(shape, id=shape.id,
                     marks=[pytest.mark.postgresql] if shape.dialect != "sqlite" else [])
        for shape in shapes
    ]


def table_names(connection: sa.Connection) -> set[str]:
    """Every table of the database (ours, goose's, the lock's, ...)."""
    return set(sa.inspect(connection).get_table_names())
