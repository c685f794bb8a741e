"""SQLite's facts: names, how revisions run here, fingerprint quirks, offline scripts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.base import ADOPTION_TABLE, RUN_LOG_TABLE, ExtraCheckState

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

DRIVER = "sqlite"
SQLALCHEMY_NAME = "sqlite"
DEFAULT_DATABASE_PATH = "data/llm-proxy.db"


# Printed before a ``--sql`` script: the sqlite3 shell goes on after a failed statement by
# default, and would then commit the rest of that revision's transaction.
OFFLINE_SCRIPT_PREAMBLE = "-- for the sqlite3 shell: stop at the first error\n.bail on\n"
# A script from base creates the file: in WAL mode, as the service runs it (reference section 1)
# and as the tool creates its files (sqlite/journal.py); it cannot change inside a transaction.
OFFLINE_CREATE_PREAMBLE = (
    "-- the service runs its SQLite file in WAL mode (kept in the file)\nPRAGMA journal_mode=WAL;\n"
)
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_BUSY_TIMEOUT_MS = 30_000


# The current service runs no goose on SQLite: nothing to keep in step there.
GOOSE_VERSIONS: Mapping[str, int] | None = None
GOOSE_TABLE_DDL: str | None = None
_ADOPTED = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{ADOPTION_TABLE}'"
_HAS_RUN_LOG = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{RUN_LOG_TABLE}'"


# Tokens a pre-token-id release wrote without id (llm_proxy_db.service.token_ids): the primary key's
# index answers it; any such row sends status and startup down the full path.
NULL_IDS = "SELECT 1 FROM tokens WHERE id IS NULL LIMIT 1"


# SQLAlchemy's get_table_names() here (the internal sqlite_ tables left out), and what
# objects.relations_named asks, for the fast path's bare reads (dialect.read_tables).
_TABLE_NAMES = (
    "SELECT name FROM main.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY name"
)
_RELATIONS_NAMED = (
    "SELECT name, CASE WHEN type = 'table' THEN 'virtual table' ELSE type END FROM sqlite_master "
    "WHERE name IN ({names}) AND (type <> 'table' OR upper(sql) LIKE 'CREATE VIRTUAL TABLE%')"
)

def parse_database_url(raw: str) -> URL:
    """SQLite is configured by ``DATABASE_PATH``; a ``sqlite:///path`` URL is read as that path."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=raw.removeprefix("sqlite:///"))


def offline_settings() -> Settings:
    """Settings for offline (``--sql``) scripts, which connect to nothing."""
    return Settings(driver=DRIVER, database_path=Path("offline.db"))


def goose_offline_sql(wanted: int) -> list[str]:
    """No goose on SQLite: nothing to write."""
    del wanted
    return []


# How revisions run here.  SQLite: one transaction per revision (DDL included), foreign keys
# off while migrating (batch table rebuilds), so references are checked by this tool before
# and after; ALTER through batch rebuilds; a backup copy before every schema change.
TRANSACTIONAL_DDL = True
FOREIGN_KEYS_OFF_WHILE_MIGRATING = True
BATCH_ALTER = True
LOCK_TIMEOUT_RETRIES = False
BACKUP_BEFORE_EVERY_CHANGE = True


def partly_applied(connection: Connection, revision: str, module: ModuleType) -> str | None:
    """Never: a revision here is one transaction, applied whole or not at all."""
    del connection, revision, module
    return None


def reverted_steps(connection: Connection, module: object) -> tuple[int, list[str]] | None:
    """None: a downgrade here is one transaction, reverted whole or not at all."""
    del connection, module
    return None


# From 2025-12-14 the service runs its head schema with IF NOT EXISTS at every start, which
# leaves artefacts on an older file (llm_proxy_db.service.artefacts): adoption strips them.
SERVICE_START_ARTEFACTS = True


# A version-4 UUID in the canonical dashed form, computed by SQLite itself per row.
SQLITE_UUID4_SQL = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || "
    "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || "
    "lower(hex(randomblob(6)))"
)


def new_token_id_sql() -> str | None:
    """A new UUID for a token an older release wrote without ``id`` (the head DDL has no
    default here, so such rows exist: :mod:`llm_proxy_db.service.token_ids`)."""
    return SQLITE_UUID4_SQL


def empty_token_ids(connection: Connection) -> int:
    """0: an older release's token without ``id`` gets NULL here, never ``''``
    (:mod:`llm_proxy_db.service.token_ids`)."""
    del connection
    return 0


# CHECK and UNIQUE constraint names count only where revisions drop constraints by name
# (PostgreSQL, MySQL); SQLite's automatic indexes (sqlite_autoindex_*) are reflected too.
# SQLite's head schema: unnamed constraints, keys as the service's DDL writes them.
HEAD_SCHEMA = "sqlite"
NAMED_CONSTRAINTS = False
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {"include_auto_indexes": True}
# The triggers (name, table) of the connected database: the service has none (migrate drift).
TRIGGERS_SQL = "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """SQLAlchemy's reflection of CHECK constraints is complete here: None."""
    del connection, tables
    return None


def schema_cookie(connection: Connection) -> object | None:
    """``PRAGMA schema_version``: SQLite increments it on every schema change."""
    return connection.exec_driver_sql("PRAGMA schema_version").scalar()


def server_family(connection: Connection) -> str:
    """Every SQLite file reflects alike (the schema text is parsed by SQLAlchemy)."""
    del connection
    return "sqlite"


# -- the service's history here (adoption's known states) ------------------------------------

# The 2025-12-02 release's goose file 1 fails on every older SQLite file and rolls back: what
# stays is the old shape plus goose_db_version holding the seed row 0 ("version 0").
SEED_ROW_STATES: tuple[str, ...] = ("0001", "0002", "0003")
API_KEY_VARIANTS = False
STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] | None = None
EXTRA_CHECK_STATE: ExtraCheckState | None = None

# Backups are checked copies of the file (llm_proxy_db.dialects.sqlite.backup).
BACKUP_KIND = "file"
