"""MySQL 8 and MariaDB (``DB_DRIVER=mysql``): the URL or Go DSN, the engine, ``GET_LOCK``, dumps, resumable DDL.

Split by concern, as a database backend in Django is: :mod:`.base` (names, goose bookkeeping,
how revisions run, fingerprint quirks, the service's history here), :mod:`.connection` (the
operator's URL or DSN, the engine, the fast read with bare PyMySQL), :mod:`.locks`
(``GET_LOCK``), :mod:`.client` (``mariadb-dump``/``mariadb``), :mod:`.creation` (scratch
databases, a rehearsal's copy) and :mod:`.ddl` (the revisions' resumable steps and online
ALTERs; imported by the revisions, not here: it loads Alembic).  This package is the dialect
module :func:`llm_proxy_db.dialects.dialect_for` returns: its names are the
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
    "DEFAULT_TCP_ADDRESS": "base",
    "DEFAULT_UNIX_SOCKET": "base",
    "DRIVER": "base",
    "DSN_EXAMPLE": "base",
    "EXTRA_CHECK_STATE": "base",
    "FOREIGN_KEYS_OFF_WHILE_MIGRATING": "base",
    "GOOSE_TABLE": "base",
    "GOOSE_TABLE_DDL": "base",
    "GOOSE_VERSIONS": "base",
    "HEAD_SCHEMA": "base",
    "INDEX_REFLECTION_OPTIONS": "base",
    "LATEST_GOOSE_VERSION": "base",
    "LOCK_TIMEOUT_RETRIES": "base",
    "MYSQL8_TRAP_CHECK": "base",
    "MYSQL8_TRAP_DESCRIPTION": "base",
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
    "URL_SCHEMES": "base",
    "goose_offline_sql": "base",
    "new_token_id_sql": "base",
    "empty_token_ids": "base",
    "EMPTY_TOKEN_IDS": "base",
    "TOKEN_ID_INDEXED": "base",
    "partly_applied": "base",
    "reverted_steps": "base",
    "reflect_checks": "base",
    "schema_cookie": "base",
    "server_family": "base",
    "DUMP_CLIENTS": "client",
    "DUMP_DESCRIPTION": "client",
    "INSTALL_HINT": "client",
    "LOAD_CLIENTS": "client",
    "RESTORE_TOOLS": "client",
    "backup_command": "client",
    "backup_suffix": "client",
    "drop_everything": "client",
    "dump": "client",
    "dump_client": "client",
    "inspect_dump": "client",
    "load_dump": "client",
    "version_tables_last": "client",
    "connect_args": "connection",
    "utf8_password": "engine",
    "create_engine": "connection",
    "database_exists": "connection",
    "is_url": "connection",
    "mask_dsn": "connection",
    "offline_settings": "connection",
    "parse_database_url": "connection",
    "read_run_log": "connection",
    "read_versions": "connection",
    "SCRATCH": "creation",
    "copy_of": "creation",
    "read_tables": "connection",
    "read_broken_references": "connection",
    "surely_writable": "writable",
    "check_copy_source": "creation",
    "scratch_connection": "creation",
    "scratch_database": "creation",
    "LOCK_NAME": "locks",
    "SERVICE_LOCK_NAME": "locks",
    "lock_name": "locks",
    "service_migrating": "locks",
    "migration_lock": "locks",
    "transaction_pooler": "llm_proxy_db.dialects.no_topology",
    "read_only_reason": "llm_proxy_db.dialects.no_topology",
    "read_only_reason_on": "llm_proxy_db.dialects.no_topology",
    "release_migration_lock": "locks",
    "try_migration_lock": "locks",
    "try_own_lock": "locks",
    "try_service_lock": "locks",
    "describe_topology": "writable",
    "refuse_unwritable": "writable",
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
