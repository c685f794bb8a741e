"""PostgreSQL (``DB_DRIVER=postgres``): the URL, the engine, the advisory locks, dumps, scratch places.

Split by concern, as a database backend in Django is: :mod:`.base` (names, goose bookkeeping,
how revisions run, fingerprint quirks, the service's history here), :mod:`.connection` (the
operator's URL, the engine, the fast read with bare psycopg), :mod:`.locks` (advisory locks),
:mod:`.client` (``pg_dump``/``pg_restore``/``psql``), :mod:`.creation` (scratch databases and
schemas, a rehearsal's copy), :mod:`.pooler` (is this URL a transaction pooler's?),
:mod:`.replication` (a standby; the replicas' lag read on the primary).  This package is the dialect module
:func:`llm_proxy_db.dialects.dialect_for` returns: its names are the
:class:`~llm_proxy_db.dialects.base.ServerDialect` protocol's.

The names are imported from their submodule on first use (:func:`__getattr__`), so the fast
startup path loads only what its read needs.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name -> the submodule that defines it (a dotted name: a shared module).
_HOME = {
    "interruptible": "llm_proxy_db.dialects.interrupts",
    "relations_named": "objects",
    "schema_objects": "objects",
    "API_KEY_VARIANTS": "base",
    "BACKUP_BEFORE_EVERY_CHANGE": "base",
    "BACKUP_KIND": "base",
    "BATCH_ALTER": "base",
    "DRIVER": "base",
    "EXTRA_CHECK_STATE": "base",
    "FOREIGN_KEYS_OFF_WHILE_MIGRATING": "base",
    "GOOSE_TABLE": "base",
    "GOOSE_TABLE_DDL": "base",
    "GOOSE_VERSIONS": "base",
    "HEAD_SCHEMA": "base",
    "INDEX_REFLECTION_OPTIONS": "base",
    "LOCK_TIMEOUT_RETRIES": "base",
    "NAMED_CONSTRAINTS": "base",
    "TRIGGERS_SQL": "base",
    "OFFLINE_SCRIPT_PREAMBLE": "base",
    "OFFLINE_CREATE_PREAMBLE": "base",
    "OFFLINE_URL": "base",
    "SEED_ROW_STATES": "base",
    "SERVICE_START_ARTEFACTS": "base",
    "SQLALCHEMY_DRIVER": "base",
    "SQLALCHEMY_NAME": "base",
    "STATE_GOOSE_VERSIONS": "base",
    "TRANSACTIONAL_DDL": "base",
    "URL_EXAMPLE": "base",
    "URL_SCHEMES": "base",
    "goose_offline_sql": "base",
    "new_token_id_sql": "base",
    "empty_token_ids": "base",
    "partly_applied": "base",
    "reverted_steps": "base",
    "service_migrating": "locks",
    "reflect_checks": "base",
    "schema_cookie": "base",
    "server_family": "base",
    "DUMP_DESCRIPTION": "client",
    "INSTALL_HINT": "client",
    "LOAD_REPLACES": "client",
    "RESTORE_TOOLS": "client",
    "backup_suffix": "client",
    "drop_everything": "client",
    "dump": "client",
    "inspect_dump": "client",
    "load_dump": "client",
    "pg_dump": "client",
    "pg_restore": "client",
    "run_tool": "client",
    "create_engine": "connection",
    "database_exists": "connection",
    "offline_settings": "connection",
    "parse_database_url": "connection",
    "read_run_log": "connection",
    "read_versions": "connection",
    "read_versions_at": "connection",
    "read_run_log_at": "connection",
    "SCRATCH": "creation",
    "copy_of": "creation",
    "read_tables": "connection",
    "read_tables_at": "connection",
    "read_broken_references": "connection",
    "surely_writable": "pooler",
    "surely_writable_at": "pooler",
    "check_copy_source": "llm_proxy_db.dialects.no_topology",
    "scratch_connection": "creation",
    "scratch_database": "creation",
    "ADVISORY_LOCK_KEY": "locks",
    "SERVICE_LOCK_KEY": "locks",
    "migration_lock": "locks",
    "transaction_pooler": "pooler",
    "read_only_reason": "replication",
    "read_only_reason_on": "replication",
    "default_backup_directory": "llm_proxy_db.dialects.server",
    "needs_backup": "llm_proxy_db.dialects.server",
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
