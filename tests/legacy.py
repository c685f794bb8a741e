"""Databases in every shape the field has, built from the service's own DDL (tests only).

The DDL is the reference text (``llm-proxy-schema.md``) kept in ``tests/fixtures``:
``legacy_sqlite.sql`` (L0 and L1, verbatim), ``head_sqlite.sql`` (section 4) and
``head_postgresql.sql`` (goose versions 1-6, split at its ``-- goose N`` markers).  The
other shapes are made the way the service made them: L2-fresh by the columns inside
``CREATE TABLE``, L2-upgraded by ``ALTER TABLE ... ADD COLUMN`` at the end, goose states
with a real ``goose_db_version`` table.  ``DAMAGES`` break a built database in the ways
the field breaks them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from tests.seed import OUR_TABLES, seed

FIXTURES = Path(__file__).parent / "fixtures"

L2_ALTERS = [
    'ALTER TABLE "projects" ADD COLUMN "is_active" BOOLEAN NOT NULL DEFAULT 1',
    'ALTER TABLE "projects" ADD COLUMN "deactivated_at" DATETIME',
    'ALTER TABLE "tokens" ADD COLUMN "deactivated_at" DATETIME',
]
GOOSE_1_SQLITE_ALTER = "ALTER TABLE projects ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT 1"
GOOSE_TABLE_SQL = {
    "sqlite": """CREATE TABLE goose_db_version (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  version_id INTEGER NOT NULL,
  is_applied INTEGER NOT NULL,
  tstamp TIMESTAMP DEFAULT (datetime('now'))
)""",
    "mysql": """CREATE TABLE goose_db_version (
  id serial NOT NULL,
  version_id bigint NOT NULL,
  is_applied boolean NOT NULL,
  tstamp timestamp NULL default now(),
  PRIMARY KEY(id)
)""",
    "postgresql": """CREATE TABLE goose_db_version (
  id serial NOT NULL,
  version_id bigint NOT NULL,
  is_applied boolean NOT NULL,
  tstamp timestamp NULL default now(),
  PRIMARY KEY(id)
)""",
}


@dataclass(frozen=True)
class Legacy:
    """A field shape: how to build it and the known state it must be detected as."""

    name: str
    dialect: str
    statements: tuple[str, ...]
    expected_state: str
    goose_version: int | None = None
    all_outcomes: bool = False

    @property
    def id(self) -> str:
        """The pytest id."""
        return f"{self.dialect}-{self.name}"


def statements(sql: str) -> list[str]:
    """Split a script into statements, dropping comment lines."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _sections(path: Path, marker: str) -> list[str]:
    """The text between ``-- {marker}...`` lines (the text before the first is dropped)."""
    parts = re.split(rf"^-- {marker}.*$", path.read_text(), flags=re.MULTILINE)
    return parts[1:]


def _sqlite_l0_l1() -> tuple[str, str]:
    l0, l1 = _sections(FIXTURES / "legacy_sqlite.sql", "L")
    return l0, l1


def _pg_goose_steps() -> list[str]:
    """Goose versions 1..6 on PostgreSQL: the script before the first marker, then each step."""
    text = (FIXTURES / "head_postgresql.sql").read_text()
    first, *rest = re.split(r"^-- goose \d+.*$", text, flags=re.MULTILINE)
    return [first, *rest]


def _l2_fresh(l0: str, l1: str) -> str:
    projects = "  openai_api_key TEXT NOT NULL,\n"
    tokens = "  is_active BOOLEAN NOT NULL DEFAULT 1,\n"
    l0 = l0.replace(tokens, tokens + "  deactivated_at DATETIME,\n")
    l0 = l0.replace(projects, projects + tokens + "  deactivated_at DATETIME,\n")
    assert l0.count("deactivated_at") == 2
    return l0 + l1


def _goose_rows(version: int) -> list[str]:
    values = ", ".join(f"({v}, TRUE)" for v in range(version + 1))
    return [f"INSERT INTO goose_db_version (version_id, is_applied) VALUES {values}"]


def sqlite_shapes() -> list[Legacy]:
    """L0, L1, L2 (fresh, upgraded from L0 and from L1), goose-1, head-shaped."""
    l0, l1 = _sqlite_l0_l1()
    goose = [GOOSE_TABLE_SQL["sqlite"], *_goose_rows(1)]
    head = tuple(statements((FIXTURES / "head_sqlite.sql").read_text()))
    return [
        Legacy("L0", "sqlite", tuple(statements(l0)), "0001"),
        Legacy("L1", "sqlite", tuple(statements(l0 + l1)), "0002"),
        Legacy("L2-fresh", "sqlite", tuple(statements(_l2_fresh(l0, l1))), "0003"),
        Legacy(
            "L2-upgraded-from-L0", "sqlite", (*statements(l0), *L2_ALTERS, *statements(l1)), "0003"
        ),
        Legacy("L2-upgraded-from-L1", "sqlite", (*statements(l0 + l1), *L2_ALTERS), "0003"),
        Legacy(
            "goose-1",
            "sqlite",
            (*statements(l0 + l1), GOOSE_1_SQLITE_ALTER, *goose),
            "goose-1",
            goose_version=1,
        ),
        Legacy("head-unversioned", "sqlite", head, "0007", all_outcomes=True),
    ]


_PG_STATE_OF_GOOSE = {1: "goose-1", 2: "0003", 3: "0004", 4: "0005", 5: "0006", 6: "0007"}


def postgresql_shapes() -> list[Legacy]:
    """Goose versions 1..6, and the same created with ``api_key`` from the start."""
    steps = _pg_goose_steps()
    shapes = []
    for version in range(1, 7):
        for api_key in (False, True):
            shapes.append(_pg_shape(steps, version, api_key))
    return shapes


def _pg_shape(steps: list[str], version: int, api_key: bool) -> Legacy:
    chosen = list(steps[:version])
    expected = _PG_STATE_OF_GOOSE[version]
    name = f"goose-{version}"
    if api_key:
        chosen[0] = chosen[0].replace("openai_api_key TEXT", "api_key TEXT")
        if version >= 5:
            chosen[4] = ""  # goose 5 renames only when openai_api_key exists
        name += "-api_key"
        expected = f"{expected}-api_key" if version <= 3 else ("0006" if version == 4 else expected)
    sql = [*statements("".join(f"{part};\n" for part in chosen if part.strip()))]
    sql += [GOOSE_TABLE_SQL["postgresql"], *_goose_rows(version)]
    return Legacy(
        name, "postgresql", tuple(sql), expected, goose_version=version, all_outcomes=version >= 6
    )


_MYSQL_STATE_OF_GOOSE = {1: "goose-1-api_key", 2: "0003-api_key", 3: "0004-api_key", 4: "0006", 5: "0007"}
# MySQL 8 turns file 1's inline CHECK into audit_events_chk_1, which file 5's MODIFY COLUMN
# leaves in place; MariaDB drops it.  The same shape is made on MariaDB by adding it by name.
MYSQL8_TRAP = "ALTER TABLE audit_events ADD CONSTRAINT audit_events_chk_1 CHECK (outcome IN ('success','failure'))"


def mysql_shapes() -> list[Legacy]:
    """Goose MySQL versions 1..5, and goose-5 as MySQL 8 leaves it (the two-value check kept)."""
    steps = re.split(r"^-- goose \d+.*$", (FIXTURES / "goose_mysql.sql").read_text(), flags=re.MULTILINE)[1:]
    shapes = []
    for version in range(1, 6):
        sql = [*statements("".join(steps[:version])), GOOSE_TABLE_SQL["mysql"], *_goose_rows(version)]
        expected = _MYSQL_STATE_OF_GOOSE[version]
        shapes.append(Legacy(f"goose-{version}", "mysql", tuple(sql), expected, version, version >= 5))
    trap = (*shapes[-1].statements, MYSQL8_TRAP)
    shapes.append(Legacy("goose-5-mysql8", "mysql", trap, "goose-5-mysql8", 5, False))
    return shapes


def shapes(dialect: str) -> list[Legacy]:
    """Every field shape of ``dialect``."""
    return {"sqlite": sqlite_shapes, "postgresql": postgresql_shapes, "mysql": mysql_shapes}[dialect]()


def build(connection: Connection, legacy: Legacy) -> None:
    """Run the shape's DDL and commit."""
    for statement in legacy.statements:
        connection.exec_driver_sql(statement)
    connection.commit()


def _drop_index(connection: Connection) -> None:
    on = " ON tokens" if connection.dialect.name == "mysql" else ""
    connection.exec_driver_sql(f"DROP INDEX idx_tokens_expires_at{on}")


def _drop_column(connection: Connection) -> None:
    connection.exec_driver_sql("ALTER TABLE tokens DROP COLUMN last_used_at")


def _drop_table(connection: Connection) -> None:
    connection.exec_driver_sql("DROP TABLE tokens")


def _wrong_type(connection: Connection) -> None:
    connection.exec_driver_sql("ALTER TABLE tokens RENAME COLUMN max_requests TO max_requests_old")
    connection.exec_driver_sql("ALTER TABLE tokens ADD COLUMN max_requests TEXT")
    connection.exec_driver_sql("ALTER TABLE tokens DROP COLUMN max_requests_old")


# name -> (how to break the database, the line the refusal must contain)
DAMAGES: dict[str, tuple[Callable[[Connection], None], str]] = {
    "index-missing": (_drop_index, "missing index idx_tokens_expires_at on tokens"),
    "column-missing": (_drop_column, "column tokens.last_used_at missing"),
    "table-missing": (_drop_table, "table tokens missing"),
    "wrong-type": (_wrong_type, "column tokens.max_requests has type text, expected integer"),
}


def damage(connection: Connection, name: str) -> str:
    """Break the database in the named way; returns the difference line to expect."""
    breaker, expected = DAMAGES[name]
    breaker(connection)
    connection.commit()
    return expected


def row_counts(connection: Connection) -> dict[str, int]:
    """Rows per table for our tables and goose's."""
    names = set(sa.inspect(connection).get_table_names())
    counted = [name for name in (*OUR_TABLES, "goose_db_version") if name in names]
    counts = {
        name: connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
        for name in counted
    }
    connection.commit()
    return counts


def params(dialects: tuple[str, ...] = ("sqlite", "postgresql", "mysql")) -> list[Any]:
    """Every field shape as a pytest parameter (server ones marked ``postgresql`` / ``mysql``)."""
    marks = {"sqlite": [], "postgresql": [pytest.mark.postgresql], "mysql": [pytest.mark.mysql]}
    return [
        pytest.param(shape, id=shape.id, marks=marks[dialect])
        for dialect in dialects
        for shape in shapes(dialect)
    ]


def damaged_params() -> list[Any]:
    """(shape, damage) pairs: every damage of every shape, except that the PostgreSQL
    ``api_key`` variants (which differ from their twins by one column name) get one damage,
    to keep the suite fast."""
    pairs = []
    for param in params():
        (shape,) = param.values
        one = shape.name.endswith("-api_key") or shape.dialect == "mysql"  # MySQL: no template copies
        damages = ["index-missing"] if one else sorted(DAMAGES)
        pairs.extend(
            pytest.param(shape, name, id=f"{shape.id}-{name}", marks=param.marks)
            for name in damages
        )
    return pairs


def settings_for(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings for a new empty database of ``dialect`` (PostgreSQL: dropped after the test)."""
    if dialect == "sqlite":
        return Settings(driver="sqlite", database_path=tmp_path / "data" / "llm-proxy.db")
    if dialect == "mysql":
        return Settings(driver="mysql", database_url=request.getfixturevalue("mysql_url"))
    return Settings(driver="postgres", database_url=request.getfixturevalue("postgres_url"))


def create(settings: Settings, legacy: Legacy, damaged: str | None = None) -> str | None:
    """Build ``legacy`` at ``settings``, seed a few hundred rows, optionally damage it.

    Returns the difference line the damage must produce (None when undamaged).
    """
    with connect(settings) as connection:
        build(connection, legacy)
        outcomes = ("success", "failure", "denied", "error") if legacy.all_outcomes else ("success", "failure")
        seed(connection, outcomes=outcomes)
    return _damage(settings, damaged)


def prepare(
    legacy: Legacy, tmp_path: Path, request: pytest.FixtureRequest, damaged: str | None = None
) -> tuple[Settings, str | None]:
    """A new database in the shape of ``legacy``, seeded and optionally damaged.

    PostgreSQL databases are copied (``CREATE DATABASE ... TEMPLATE``) from one built and
    seeded template per shape and session: copying is ten times faster than the DDL and
    the rows.  Each test still gets its own database, dropped after it.
    """
    if legacy.dialect in ("sqlite", "mysql"):  # MySQL has no template databases: built each time
        settings = settings_for(legacy.dialect, tmp_path, request)
        return settings, create(settings, legacy, damaged)
    settings = _postgres_copy(legacy, request)
    return settings, _damage(settings, damaged)


def _damage(settings: Settings, damaged: str | None) -> str | None:
    if damaged is None:
        return None
    with connect(settings) as connection:
        return damage(connection, damaged)


_TEMPLATES: dict[str, str] = {}


def _postgres_copy(legacy: Legacy, request: pytest.FixtureRequest) -> Settings:
    server = request.getfixturevalue("postgres_server_url")
    if server is None:
        pytest.skip("no PostgreSQL server")
    template = _TEMPLATES.get(legacy.id) or _make_template(server, legacy, request.config)
    name = _create_database(server, template)
    request.addfinalizer(lambda: _drop_database(server, name))
    return Settings(driver="postgres", database_url=server.set(database=name))


def _make_template(server: Any, legacy: Legacy, config: pytest.Config) -> str:
    name = _create_database(server)
    config.add_cleanup(lambda: _drop_database(server, name))
    create(Settings(driver="postgres", database_url=server.set(database=name)), legacy)
    _TEMPLATES[legacy.id] = name
    return name


def _admin(server: Any) -> sa.Engine:
    return sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _create_database(server: Any, template: str | None = None) -> str:
    name = f"llmproxy_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with _admin(server).connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"{clause}')
    return name


def _drop_database(server: Any, name: str) -> None:
    with _admin(server).connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def same_rows(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> bool:
    """Whether every row of ``before`` is in ``after`` with the same values.

    Columns that ``after`` has and ``before`` lacks (added by revisions) are ignored."""
    for table, rows in before.items():
        keep = {column for column, _ in rows[0]} if rows else set()
        want = sorted((tuple(sorted(row, key=repr)) for row in rows), key=repr)
        have = sorted(
            (
                tuple(sorted((p for p in row if p[0] in keep), key=repr))
                for row in after.get(table, [])
            ),
            key=repr,
        )
        if want != have:
            return False
    return True
