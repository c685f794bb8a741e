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

The names are imported from their submodule on first use (:func:`__getattr__`), so the fast
startup path loads only what its read needs.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name -> the submodule that defines it (a dotted name: a shared module).
_HOME = {
    "interruptible": "interrupt",
    "relations_named": "objects",
    "busy_timeout_ms": "connection",
    "default_backup_directory": "backup",
    "needs_backup": "backup",
    "API_KEY_VARIANTS": "base",
    "BACKUP_BEFORE_EVERY_CHANGE": "base",
    "BACKUP_KIND": "base",
    "BATCH_ALTER": "base",
    "DEFAULT_DATABASE_PATH": "base",
    "DRIVER": "base",
    "EXTRA_CHECK_STATE": "base",
    "FOREIGN_KEYS_OFF_WHILE_MIGRATING": "base",
    "GOOSE_TABLE_DDL": "base",
    "GOOSE_VERSIONS": "base",
    "HEAD_SCHEMA": "base",
    "INDEX_REFLECTION_OPTIONS": "base",
    "LOCK_TIMEOUT_RETRIES": "base",
    "NAMED_CONSTRAINTS": "base",
    "TRIGGERS_SQL": "base",
    "NULL_IDS": "base",
    "OFFLINE_SCRIPT_PREAMBLE": "base",
    "OFFLINE_CREATE_PREAMBLE": "base",
    "SEED_ROW_STATES": "base",
    "SERVICE_START_ARTEFACTS": "base",
    "SQLALCHEMY_NAME": "base",
    "SQLITE_BUSY_TIMEOUT_MS": "base",
    "SQLITE_HEADER": "base",
    "SQLITE_UUID4_SQL": "base",
    "STATE_GOOSE_VERSIONS": "base",
    "TRANSACTIONAL_DDL": "base",
    "goose_offline_sql": "base",
    "new_token_id_sql": "base",
    "empty_token_ids": "base",
    "offline_settings": "base",
    "parse_database_url": "base",
    "partly_applied": "base",
    "reverted_steps": "base",
    "service_migrating": "locks",
    "reflect_checks": "base",
    "schema_cookie": "base",
    "server_family": "base",
    "check_sqlite_path": "connection",
    "create_engine": "connection",
    "database_exists": "connection",
    "is_sqlite_file": "connection",
    "read_run_log": "connection",
    "read_versions": "connection",
    "copy_of": "creation",
    "read_tables": "connection",
    "read_broken_references": "connection",
    "surely_writable": "connection",
    "check_copy_source": "llm_proxy_db.dialects.no_topology",
    "scratch_connection": "creation",
    "lock_file": "locks",
    "migration_lock": "locks",
    "transaction_pooler": "llm_proxy_db.dialects.no_topology",
    "read_only_reason": "llm_proxy_db.dialects.no_topology",
    "read_only_reason_on": "llm_proxy_db.dialects.no_topology",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """A name of the dialect, imported from its submodule when first asked for (start-up time)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home if "." in home else f"{__name__}.{home}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
