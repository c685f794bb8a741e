"""PostgreSQL's facts: names, the service's goose bookkeeping, how revisions run here, fingerprint quirks."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llm_proxy_db.dialects.base import ADOPTION_TABLE, ExtraCheckState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


DRIVER = "postgres"
SQLALCHEMY_NAME = "postgresql"
SQLALCHEMY_DRIVER = "postgresql+psycopg"
# The driver module, the database as messages name it, and the extra that installs the driver.
DRIVER_PACKAGE = ("psycopg", "PostgreSQL", "postgres")
URL_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")
URL_EXAMPLE = "postgres://user@host:5432/db"
OFFLINE_URL = "postgresql://offline/offline"


# Printed before a ``--sql`` script: psql goes on after a failed statement by default, and a
# statement that commits on its own (outside BEGIN/COMMIT) must never be followed by the
# version update of a revision it did not finish.
OFFLINE_SCRIPT_PREAMBLE = "-- for psql: stop at the first error\n\\set ON_ERROR_STOP on\n"


# The service's goose bookkeeping on PostgreSQL: our revision -> the highest goose version
# whose effect that revision's schema has (versions 1..N), and goose's own CREATE TABLE.
GOOSE_TABLE = "goose_db_version"
GOOSE_VERSIONS: Mapping[str, int] | None = {
    "0001": 0, "0002": 0, "0003": 2, "0004": 3, "0005": 4, "0006": 5, "0007": 6,
}

GOOSE_TABLE_DDL: str | None = (
    f"CREATE TABLE {GOOSE_TABLE} (id serial NOT NULL, version_id bigint NOT NULL, "
    "is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))"
)

_ADOPTED = f"SELECT 1 WHERE to_regclass('{ADOPTION_TABLE}') IS NOT NULL"
# SQLAlchemy's get_table_names() on PostgreSQL: plain and partitioned tables of the current schema.
_TABLE_NAMES = (
    "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
)


def goose_offline_sql(wanted: int) -> list[str]:
    """Goose versions 1..``wanted`` recorded by statements that need no reading (``--sql``)."""
    trim = (
        f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0 "
        f"AND (version_id > {wanted} OR is_applied = false)"
    )
    if wanted == 0:  # trimmed, and dropped when only goose's seed row is left (as sync does)
        drop = (
            f"IF NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} WHERE version_id > 0) "
            f"THEN DROP TABLE {GOOSE_TABLE}; END IF;"
        )
        return [f"DO $$ BEGIN IF to_regclass('{GOOSE_TABLE}') IS NOT NULL THEN {trim}; {drop} END IF; END $$"]
    assert GOOSE_TABLE_DDL is not None
    return [
        GOOSE_TABLE_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),
        f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT 0, true "
        f"WHERE NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} WHERE version_id = 0)",
        trim,
        f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT v, true "
        f"FROM generate_series(1, {wanted}) AS v WHERE NOT EXISTS "
        f"(SELECT 1 FROM {GOOSE_TABLE} g WHERE g.version_id = v) ORDER BY v",
    ]


# How revisions run here: one transaction per revision (DDL included); DDL waits for a lock
# at most lock_timeout and a revision that lost the race is tried again (pg_online); a dump
# only before a downgrade allowed to lose data.
TRANSACTIONAL_DDL = True
FOREIGN_KEYS_OFF_WHILE_MIGRATING = False
BATCH_ALTER = False
LOCK_TIMEOUT_RETRIES = True
BACKUP_BEFORE_EVERY_CHANGE = False


def partly_applied(connection: Connection, revision: str, module: ModuleType) -> str | None:
    """What of ``revision`` is committed already when a run stopped between the steps it
    commits on their own (0003-0005, 0007: :mod:`llm_proxy_db.migration.pg_online`), else None.

    Each such revision module (``module``, the caller's read of the revision file) says it
    with ``postgresql_started(connection)``.
    """
    started = getattr(module, "postgresql_started", None)
    done = started(connection) if started is not None else []
    if not done:
        return None
    return f"{revision} partly applied: {'; '.join(done)}; its version is not recorded yet"


# The service's starts leave no schema artefacts here (goose runs its files, nothing else).
SERVICE_START_ARTEFACTS = False


def new_token_id_sql() -> str | None:
    """None: ``tokens.id`` is never NULL here (:mod:`llm_proxy_db.service.token_ids`)."""
    return None

# PostgreSQL's head schema: named constraints, NOT NULL keys (llm_proxy_db.schema.head).
HEAD_SCHEMA = "server"
NAMED_CONSTRAINTS = True
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {}


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """SQLAlchemy's reflection of CHECK constraints is complete here: None."""
    del connection, tables
    return None


def schema_cookie(connection: Connection) -> object | None:
    """None: no cheap marker of schema changes, so the schema is read again."""
    del connection
    return None


def server_family(connection: Connection) -> str:
    """``postgresql-<major>``: catalog renderings (defaults, CHECKs) may change between majors."""
    version = connection.dialect.server_version_info or (0,)
    return f"postgresql-{version[0]}"


# -- the service's history on PostgreSQL (adoption's known states) ---------------------------

# Goose 1-4 databases a later service release created with ``api_key`` from the start.
API_KEY_VARIANTS = True
STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] | None = None
SEED_ROW_STATES: tuple[str, ...] = ()
EXTRA_CHECK_STATE: ExtraCheckState | None = None

# Backups are pg_dump archives (llm_proxy_db.dialects.postgresql.client).
BACKUP_KIND = "dump"
