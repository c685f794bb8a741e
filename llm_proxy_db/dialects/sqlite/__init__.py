"""SQLite (``DB_DRIVER=sqlite``, the service's default): the file, the engine, the lock, the fast read.

SQLite through Python's ``sqlite3`` module commits DDL on its own; here the driver's
transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so DDL (a
batch rebuild's ``CREATE TABLE`` included) is part of the revision's transaction and
rolls back with it (:mod:`.connection`).  Foreign keys are a per-connection setting that
cannot change inside a transaction, so it is chosen when the connection is opened.

The migration lock is ``flock`` on a sidecar file (``<database>.migrate.lock``), which the
kernel releases when the process dies (:mod:`.locks`).  Backups are checked copies of the
file (:mod:`.backup`, :mod:`.snapshot`); naming, rotation and the in-place restore are
:mod:`llm_proxy_db.safety.sqlite_backup`'s.  This package is the dialect module
:func:`llm_proxy_db.dialects.dialect_for` returns: its names are the
:class:`~llm_proxy_db.dialects.base.Dialect` protocol's.
"""

from llm_proxy_db.dialects.sqlite.backup import (
    default_backup_directory,
    needs_backup,
)
from llm_proxy_db.dialects.sqlite.base import (
    API_KEY_VARIANTS,
    BACKUP_BEFORE_EVERY_CHANGE,
    BACKUP_KIND,
    BATCH_ALTER,
    DEFAULT_DATABASE_PATH,
    DRIVER,
    EXTRA_CHECK_STATE,
    FOREIGN_KEYS_OFF_WHILE_MIGRATING,
    GOOSE_TABLE_DDL,
    GOOSE_VERSIONS,
    HEAD_SCHEMA,
    INDEX_REFLECTION_OPTIONS,
    LOCK_TIMEOUT_RETRIES,
    NAMED_CONSTRAINTS,
    NULL_IDS,
    OFFLINE_SCRIPT_PREAMBLE,
    SEED_ROW_STATES,
    SERVICE_START_ARTEFACTS,
    SQLALCHEMY_NAME,
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_HEADER,
    SQLITE_UUID4_SQL,
    STATE_GOOSE_VERSIONS,
    TRANSACTIONAL_DDL,
    goose_offline_sql,
    new_token_id_sql,
    offline_settings,
    parse_database_url,
    partly_applied,
    reflect_checks,
    schema_cookie,
    server_family,
)
from llm_proxy_db.dialects.sqlite.connection import (
    check_sqlite_path,
    create_engine,
    database_exists,
    is_sqlite_file,
    read_versions,
)
from llm_proxy_db.dialects.sqlite.creation import (
    copy_of,
    scratch_connection,
)
from llm_proxy_db.dialects.sqlite.locks import (
    lock_file,
    migration_lock,
)

__all__ = [
    "API_KEY_VARIANTS",
    "BACKUP_BEFORE_EVERY_CHANGE",
    "BACKUP_KIND",
    "BATCH_ALTER",
    "DEFAULT_DATABASE_PATH",
    "DRIVER",
    "EXTRA_CHECK_STATE",
    "FOREIGN_KEYS_OFF_WHILE_MIGRATING",
    "GOOSE_TABLE_DDL",
    "GOOSE_VERSIONS",
    "HEAD_SCHEMA",
    "INDEX_REFLECTION_OPTIONS",
    "LOCK_TIMEOUT_RETRIES",
    "NAMED_CONSTRAINTS",
    "NULL_IDS",
    "OFFLINE_SCRIPT_PREAMBLE",
    "SEED_ROW_STATES",
    "SERVICE_START_ARTEFACTS",
    "SQLALCHEMY_NAME",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_HEADER",
    "SQLITE_UUID4_SQL",
    "STATE_GOOSE_VERSIONS",
    "TRANSACTIONAL_DDL",
    "check_sqlite_path",
    "copy_of",
    "create_engine",
    "database_exists",
    "default_backup_directory",
    "goose_offline_sql",
    "is_sqlite_file",
    "lock_file",
    "migration_lock",
    "needs_backup",
    "new_token_id_sql",
    "offline_settings",
    "parse_database_url",
    "partly_applied",
    "read_versions",
    "reflect_checks",
    "schema_cookie",
    "scratch_connection",
    "server_family",
]
