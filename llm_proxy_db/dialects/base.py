"""What every dialect module provides, so the rest of the package can stay dialect-free.

A dialect module (a package: ``dialects/sqlite``, ``dialects/postgresql``, ``dialects/mysql``)
exposes names that match :class:`Dialect`; nothing is instantiated.  Dialects sit low in the
package's layering (``docs/architecture.md``): they import only ``config``, ``errors``,
``events`` and ``files``; what a run does with them (backups, restores, known states) lives above.
:func:`llm_proxy_db.dialects.dialect_for` finds the module for settings, a
connection or a name.  Dialect modules import SQLAlchemy and their driver lazily: the fast
startup path reads the version table through them without either.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects.interrupts import Stop
    from llm_proxy_db.events import Progress

#: This tool's own tables and the service's goose table: never compared as schema.
ADOPTION_TABLE = "llm_proxy_adoption"
RUN_LOG_TABLE = "llm_proxy_run_log"
# Written into every SQLite backup (where it came from); a backup copied into place carries it.
BACKUP_ORIGIN_TABLE = "llm_proxy_backup_origin"
GOOSE_TABLE = "goose_db_version"
# What every dialect's read_versions runs (bench/startup.py times it with the bare drivers).
VERSION_QUERY = "SELECT version_num FROM alembic_version"
# What every dialect's read_run_log runs (the fast ``migrate log`` / ``history``), oldest first.
RUN_LOG_COLUMNS = (
    "action", "revision", "from_revision", "to_revision", "started_at", "ended_at", "outcome",
    "backup_file", "detail", "tool_version", "host", "os_user", "seconds",
)
RUN_LOG_QUERY = f"SELECT {', '.join(RUN_LOG_COLUMNS)} FROM {RUN_LOG_TABLE} ORDER BY id"
#: The tables every llm-proxy database (and every backup of one) holds.
REQUIRED_TABLES = ("projects", "tokens")


@dataclass(frozen=True)
class ExtraCheckState:
    """A known state only one dialect's service history left: the schema of revision
    ``based_on`` plus one extra CHECK (``check`` named ``constraint_name`` on ``table``),
    stamped ``revision`` with goose versions ``goose_versions``."""

    name: str
    revision: str
    description: str
    based_on: str
    table: str
    check: str
    constraint_name: str
    goose_versions: tuple[int, ...]


@dataclass(frozen=True)
class DumpInfo:
    """What a dump says about itself: the database it was taken of, the tables it creates and
    the revision its ``alembic_version`` holds (None: unversioned, or at base); ``unfinished``:
    the ``(kind, subject)`` rows of the marker of an operation that had not ended when the
    dump was taken (:mod:`llm_proxy_db.dialects.unfinished`; MySQL's dumps only)."""

    database: str | None
    tables: frozenset[str]
    revision: str | None
    unfinished: tuple[tuple[str, str], ...] = ()


class Dialect(Protocol):
    """The dialect-specific jobs: configuration, connecting, locking, the fast read, goose data."""

    #: ``DB_DRIVER`` value (the service's spelling) and SQLAlchemy's dialect name.
    DRIVER: str
    SQLALCHEMY_NAME: str
    OFFLINE_SCRIPT_PREAMBLE: str  # printed before a --sql script (the client stops at the first error)
    #: Opens an offline script that creates the schema from base, outside any transaction (SQLite:
    #: the file in WAL mode, as the service runs it and as the tool creates its files); "" elsewhere.
    OFFLINE_CREATE_PREAMBLE: str
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
    #: Which head schema :func:`llm_proxy_db.schema.head.head_metadata` builds: ``sqlite``,
    #: ``server`` (PostgreSQL's named constraints) or ``mysql``.
    HEAD_SCHEMA: str
    #: Fingerprint quirks: whether constraint names count, options for index reflection.
    NAMED_CONSTRAINTS: bool
    INDEX_REFLECTION_OPTIONS: Mapping[str, Any]
    #: Query listing the triggers (name, table) of the connected database (``migrate drift``).
    TRIGGERS_SQL: str
    #: Whether the service's starts leave schema artefacts on older databases (adoption strips them).
    SERVICE_START_ARTEFACTS: bool
    #: The service's history here, which adoption's known states follow
    #: (:func:`llm_proxy_db.adoption.known_states.adjust_for_dialect`): whether goose 1-4
    #: databases created with ``api_key`` from the start existed; each state's goose versions
    #: where goose numbers them its own way; the states that may carry goose's table with only
    #: its seed row (goose "version 0", a failed start); a state only this dialect has.
    API_KEY_VARIANTS: bool
    STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] | None
    SEED_ROW_STATES: tuple[str, ...]
    EXTRA_CHECK_STATE: ExtraCheckState | None
    #: How a backup is taken: ``"file"`` (a copy of the database file) or ``"dump"`` (the
    #: server's client tools, :class:`ServerDialect`); :mod:`llm_proxy_db.safety.backup` runs it.
    BACKUP_KIND: str

    def parse_database_url(self, raw: str) -> URL:
        """The operator's ``DATABASE_URL`` as a SQLAlchemy URL (passwords kept, never printed)."""
        ...

    def offline_settings(self) -> Settings:
        """Settings for offline (``--sql``) scripts, which connect to nothing."""
        ...

    def goose_offline_sql(self, wanted: int) -> list[str]:
        """Statements recording goose versions 1..``wanted`` without reading (``--sql`` scripts)."""
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

    def transaction_pooler(self, settings: Settings) -> str | None:
        """The evidence that ``settings``' URL leads to a transaction pooler (server sessions
        that are not ours between transactions), or None."""
        ...

    def read_only_reason(self, settings: Settings) -> str | None:
        """Why nothing can be written at ``settings``' URL (a hot standby, a read-only
        session), naming the server; None when it writes or the dialect does not check."""
        ...

    def read_only_reason_on(self, connection: Connection, settings: Settings) -> str | None:
        """:meth:`read_only_reason` asked through an open ``connection`` (no connection of its own)."""
        ...

    def read_run_log(self, settings: Settings) -> list[tuple[Any, ...]]:
        """The run log's rows (:data:`RUN_LOG_QUERY`) with the lightest client; [] without one."""
        ...

    def read_tables(self, settings: Settings, names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
        """With the lightest client: the tables SQLAlchemy's ``get_table_names`` lists, and
        :meth:`relations_named` for ``names`` (the fast ``migrate adopt --dry-run`` at head)."""
        ...

    def read_broken_references(self, settings: Settings) -> bool:
        """With the lightest client: whether rows break a foreign key where migrations switch
        foreign keys off (SQLite's ``PRAGMA foreign_key_check``); False elsewhere."""
        ...

    def surely_writable(self, settings: Settings) -> bool:
        """True when a bare read shows that ``safety.topology.writable_settings`` would accept
        ``settings`` as they are (no transaction pooler, not a standby) and, MySQL, that
        ``check_copy_source`` would (a server that takes writes); False when unsure."""
        ...

    def check_copy_source(self, settings: Settings) -> None:
        """Raise what :meth:`copy_of` refuses about the database before copying anything
        (MySQL: a server that does not take writes); a rehearsal at head makes no copy."""
        ...

    def new_token_id_sql(self) -> str | None:
        """SQL for a new token id where an older release's tokens can lack one; else None."""
        ...

    def empty_token_ids(self, connection: Connection) -> int:
        """How many tokens have the id ``''`` (MySQL without strict mode: an older release's
        INSERT after 0005), by an indexed read only; 0 where none can exist or ``id`` has no index."""
        ...

    def partly_applied(self, connection: Connection, revision: str, module: ModuleType) -> str | None:
        """Where DDL is not transactional: how far ``revision`` (its revision file's ``module``)
        got before a run stopped."""
        ...

    def service_migrating(self, connection: Connection) -> bool:
        """Whether another session holds the service's own migration lock now (its goose run
        may be half-way); False where the service takes none."""
        ...

    def reverted_steps(self, connection: Connection, module: object) -> tuple[int, list[str]] | None:
        """Where a downgrade commits as it goes: (steps done, every step) of the revision in
        ``module``'s downgrade; None where it is one transaction or lists no steps."""
        ...

    def reflect_checks(self, connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
        """CHECK constraints per table where SQLAlchemy's reflection misses some; else None."""
        ...

    def relations_named(self, connection: Connection, names: tuple[str, ...]) -> dict[str, str]:
        """``name -> kind`` for each of ``names`` that exists as something other than a plain
        table (a view, a sequence, ...): adoption must see what impersonates or blocks a table."""
        ...

    def interruptible(self, connection: Connection) -> AbstractContextManager[Stop]:
        """For a run of revisions: a signal stops the running statement at once; the
        :class:`~llm_proxy_db.dialects.interrupts.Stop` yielded records it."""
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

    # Backups (llm_proxy_db.safety.backup chooses the directory and the count kept and runs them).

    def default_backup_directory(self, settings: Settings) -> Path:
        """Where backups go when no directory is given."""
        ...

    def needs_backup(self, settings: Settings) -> bool:
        """False when there is certainly nothing to lose (an empty SQLite file)."""
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

    def schema_objects(self, connection: Connection) -> list[str]:
        """``kind name`` of every object of the database's schema, of every kind; [] when
        empty (a restore without ``--force`` loads into an empty database only)."""
        ...

    def drop_everything(self, connection: Connection) -> None:
        """Drop every table and view of the database of ``connection`` (a forced restore)."""
        ...

    def scratch_database(self, server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
        """A new empty database on ``server`` for verify/rehearse/known states, dropped afterwards."""
        ...

