"""What every dialect module provides, so the rest of the package can stay dialect-free.

A dialect module is a plain module whose names match :class:`Dialect`; nothing is
instantiated.  :func:`llm_proxy_db.dialects.dialect_for` finds the module for settings, a
connection or a name.  Dialect modules import SQLAlchemy and their driver lazily: the fast
startup path reads the version table through them without either.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL, Connection, Engine

    from llm_proxy_db.adoption.known_states import KnownState
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects.server_backup import DumpInfo
    from llm_proxy_db.migration.executor import Progress
    from llm_proxy_db.safety.backup import RestoreResult
    from llm_proxy_db.schema.fingerprint import Fingerprint


class Dialect(Protocol):
    """The dialect-specific jobs: configuration, connecting, locking, the fast read, goose data."""

    #: ``DB_DRIVER`` value (the service's spelling) and SQLAlchemy's dialect name.
    DRIVER: str
    SQLALCHEMY_NAME: str
    OFFLINE_SCRIPT_PREAMBLE: str  # printed before a --sql script (the client stops at the first error)
    #: The service's goose bookkeeping (our revision -> goose version, goose's CREATE TABLE);
    #: None where the service runs no goose.
    GOOSE_VERSIONS: Mapping[str, int] | None
    GOOSE_TABLE_DDL: str | None
    #: How revisions run: DDL inside the revision's transaction; foreign keys off while
    #: migrating (references checked by this tool); ALTER through batch rebuilds; DDL lock
    #: waits limited and lost races retried; a backup before every change (else only before
    #: a lossy downgrade).
    TRANSACTIONAL_DDL: bool
    FOREIGN_KEYS_OFF_WHILE_MIGRATING: bool
    BATCH_ALTER: bool
    LOCK_TIMEOUT_RETRIES: bool
    BACKUP_BEFORE_EVERY_CHANGE: bool
    #: Fingerprint quirks: whether constraint names count, options for index reflection.
    NAMED_CONSTRAINTS: bool
    INDEX_REFLECTION_OPTIONS: Mapping[str, Any]
    #: Query listing the triggers (name, table) of the connected database (``migrate drift``).
    TRIGGERS_SQL: str
    #: Whether the service's starts leave schema artefacts on older databases (adoption strips them).
    SERVICE_START_ARTEFACTS: bool

    def parse_database_url(self, raw: str) -> URL:
        """The operator's ``DATABASE_URL`` as a SQLAlchemy URL (passwords kept, never printed)."""
        ...

    def offline_settings(self) -> Settings:
        """Settings for offline (``--sql``) scripts, which connect to nothing."""
        ...

    def goose_offline_sql(self, wanted: int) -> list[str]:
        """Statements recording goose versions 1..``wanted`` without reading (``--sql`` scripts)."""
        ...

    def head_metadata(self) -> MetaData:
        """The head schema (built once per process by :func:`llm_proxy_db.schema.head.head_metadata`)."""
        ...

    def database_exists(self, settings: Settings) -> bool:
        """False only when the database certainly does not exist yet (no connection made)."""
        ...

    def create_engine(self, settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
        """An engine for ``settings`` with the dialect's connection behaviour."""
        ...

    def migration_lock(
        self, settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
    ) -> AbstractContextManager[float]:
        """Hold the migration lock (and the service's) for the body; yields the seconds waited."""
        ...

    def read_versions(self, settings: Settings, adopted_ok: bool) -> list[str]:
        """The version table's rows, with the lightest client available (fast startup path)."""
        ...

    def adjust_known_states(self, states: list[KnownState], prints: Mapping[str, Fingerprint]) -> list[KnownState]:
        """The revisions' states adjusted for the service's history on this dialect (goose
        numbering, variants that only ever existed here)."""
        ...

    def new_token_id_sql(self) -> str | None:
        """SQL for a new token id where an older release's tokens can lack one; else None."""
        ...

    def partly_applied(self, connection: Connection, revision: str) -> str | None:
        """Where DDL is not transactional: how far ``revision`` got before a run stopped."""
        ...

    def reflect_checks(self, connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
        """CHECK constraints per table where SQLAlchemy's reflection misses some; else None."""
        ...

    def copy_of(self, settings: Settings, work_dir: Path) -> AbstractContextManager[Settings]:
        """A throw-away consistent copy of ``settings``' database (files go in ``work_dir``)."""
        ...

    def schema_cookie(self, connection: Connection) -> object | None:
        """A value that changes whenever the schema changes (SQLite's ``schema_version``), read
        cheaply; None where there is none (a caller then re-reads the schema)."""
        ...

    def server_family(self, connection: Connection) -> str:
        """The servers whose schemas reflect alike (``postgresql-15``, ``mariadb-10.11``): the
        key of the committed known-state fingerprints (:mod:`llm_proxy_db.adoption.known_state_data`)."""
        ...

    def scratch_connection(self, connection: Connection) -> AbstractContextManager[Connection]:
        """A connection to an empty scratch place on the server of ``connection`` where the
        revisions can run (known states); nothing of it stays.  ConfigError when refused."""
        ...

    # Backups and restores (llm_proxy_db.safety.backup chooses the directory and the count kept).

    def default_backup_directory(self, settings: Settings) -> Path:
        """Where backups go when no directory is given."""
        ...

    def needs_backup(self, settings: Settings) -> bool:
        """False when there is certainly nothing to lose (an empty SQLite file)."""
        ...

    def backup(self, settings: Settings, out: Path | None, directory: Path, keep: int) -> Path:
        """A backup now: to ``out`` (a new file or a directory), else the automatic one in ``directory``."""
        ...

    def take_backup(self, settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
        """The automatic backup before a schema change; at most ``keep`` kept where rotated."""
        ...

    def restore(
        self, settings: Settings, source: Path, directory: Path, *, lock_timeout: float | None,
        progress: Progress | None, force: bool,
    ) -> RestoreResult:
        """Replace the database's contents with the backup ``source`` (safety copy in ``directory``)."""
        ...


class ServerDialect(Dialect, Protocol):
    """A dialect with a server: dumps, loads and scratch databases."""

    #: What a dump of this dialect is, for messages refusing another file; the client tools a
    #: restore needs (each: alternative names) and how to install them.
    DUMP_DESCRIPTION: str
    RESTORE_TOOLS: tuple[tuple[str, ...], ...]
    INSTALL_HINT: str

    def dump(self, settings: Settings, target: Path) -> Path:
        """Dump the database into ``target`` (which must not exist; written privately, then renamed)."""
        ...

    def backup_suffix(self) -> str:
        """The file name suffix of the dumps :meth:`dump` writes."""
        ...

    def inspect_dump(self, path: Path) -> DumpInfo:
        """What a dump holds (its database, tables, revision), read without loading it;
        BackupError for a file that is not a complete dump of this dialect's tool."""
        ...

    def load_dump(self, settings: Settings, dump: Path) -> None:
        """Load a dump written by :meth:`dump` into the (empty) database of ``settings``."""
        ...

    def drop_everything(self, connection: Connection) -> None:
        """Drop every table and view of the database of ``connection`` (a forced restore)."""
        ...

    def scratch_database(self, server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
        """A new empty database on ``server`` for verify/rehearse/known states, dropped afterwards."""
        ...

