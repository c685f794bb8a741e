"""SQLite (``DB_DRIVER=sqlite``, the service's default): the file, the engine, the lock, the fast read.

SQLite through Python's ``sqlite3`` module commits DDL on its own; here the driver's
transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so DDL (a
batch rebuild's ``CREATE TABLE`` included) is part of the revision's transaction and
rolls back with it.  Foreign keys are a per-connection setting that cannot change inside a
transaction, so it is chosen when the connection is opened.

The migration lock is ``flock`` on a sidecar file (``<database>.migrate.lock``), which the
kernel releases when the process dies.  Backups (checked copies, rotated) and the
in-place restore are SQLite's own and live in :mod:`llm_proxy_db.dialects.sqlite_backup`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_proxy_db.errors import DatabaseConnectionError
from llm_proxy_db.quick_status import ADOPTION_TABLE, VERSION_QUERY

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL, Connection, Engine

    from llm_proxy_db.adoption.known_states import KnownState
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.migration.executor import Progress
    from llm_proxy_db.safety.backup import RestoreResult
    from llm_proxy_db.schema.fingerprint import Fingerprint

DRIVER = "sqlite"
SQLALCHEMY_NAME = "sqlite"
DEFAULT_DATABASE_PATH = "data/llm-proxy.db"

# Printed before a ``--sql`` script: the sqlite3 shell goes on after a failed statement by
# default, and would then commit the rest of that revision's transaction.
OFFLINE_SCRIPT_PREAMBLE = "-- for the sqlite3 shell: stop at the first error\n.bail on\n"

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The current service runs no goose on SQLite: nothing to keep in step there.
GOOSE_VERSIONS: Mapping[str, int] | None = None
GOOSE_TABLE_DDL: str | None = None

_ADOPTED = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{ADOPTION_TABLE}'"
# Tokens a pre-token-id release wrote without id (llm_proxy_db.service.token_ids): the primary key's
# index answers it; any such row sends status and startup down the full path.
NULL_IDS = "SELECT 1 FROM tokens WHERE id IS NULL LIMIT 1"


def parse_database_url(raw: str) -> URL:
    """SQLite is configured by ``DATABASE_PATH``; a ``sqlite:///path`` URL is read as that path."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=raw.removeprefix("sqlite:///"))


def offline_settings() -> Settings:
    """Settings for offline (``--sql``) scripts, which connect to nothing."""
    from llm_proxy_db.config.settings import Settings

    return Settings(driver=DRIVER, database_path=Path("offline.db"))


def goose_offline_sql(wanted: int) -> list[str]:
    """No goose on SQLite: nothing to write."""
    del wanted
    return []

# -- how revisions run -----------------------------------------------------------------------

# How revisions run here.  SQLite: one transaction per revision (DDL included), foreign keys
# off while migrating (batch table rebuilds), so references are checked by this tool before
# and after; ALTER through batch rebuilds; a backup copy before every schema change.
TRANSACTIONAL_DDL = True
FOREIGN_KEYS_OFF_WHILE_MIGRATING = True
BATCH_ALTER = True
LOCK_TIMEOUT_RETRIES = False
BACKUP_BEFORE_EVERY_CHANGE = True


def partly_applied(connection: Connection, revision: str) -> str | None:
    """Never: a revision here is one transaction, applied whole or not at all."""
    del connection, revision
    return None

# -- the service's history here ---------------------------------------------------------------

# From 2025-12-14 the service runs its head schema with IF NOT EXISTS at every start, which
# leaves artefacts on an older file (llm_proxy_db.service.artefacts): adoption strips them.
SERVICE_START_ARTEFACTS = True


def new_token_id_sql() -> str | None:
    """A new UUID for a token an older release wrote without ``id`` (the head DDL has no
    default here, so such rows exist: :mod:`llm_proxy_db.service.token_ids`)."""
    from llm_proxy_db.migration.revision_helpers import SQLITE_UUID4_SQL

    return SQLITE_UUID4_SQL

# -- fingerprint quirks -----------------------------------------------------------------------

# CHECK and UNIQUE constraint names count only where revisions drop constraints by name
# (PostgreSQL, MySQL); SQLite's automatic indexes (sqlite_autoindex_*) are reflected too.
NAMED_CONSTRAINTS = False
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {"include_auto_indexes": True}
TRIGGERS_SQL = "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """SQLAlchemy's reflection of CHECK constraints is complete here: None."""
    del connection, tables
    return None

# -- connecting -------------------------------------------------------------------------------


def head_metadata() -> MetaData:
    """SQLite's head schema (unnamed constraints, keys as the service's DDL writes them)."""
    from llm_proxy_db.schema.head import shared_head_metadata

    return shared_head_metadata(server=False)


def database_exists(settings: Settings) -> bool:
    """Whether the SQLite file exists (reads never create it)."""
    return settings.database_path is not None and settings.database_path.exists()


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """An engine with transactional DDL and the chosen foreign-key setting.

    ``create=False`` refuses a path that does not exist yet (reads never create files).
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    assert settings.database_path is not None
    check_sqlite_path(settings.database_path, create=create)
    engine = sa.create_engine(settings.sqlalchemy_url(), poolclass=NullPool)
    _install_hooks(engine, foreign_keys=foreign_keys)
    return engine


def check_sqlite_path(path: Path, *, create: bool = True) -> None:
    """Refuse a path that is a directory or a file that is not a SQLite database."""
    if path.is_dir():
        raise DatabaseConnectionError(f"{path} is a directory, not a SQLite database file")
    if path.exists():
        if not is_sqlite_file(path):
            raise DatabaseConnectionError(
                f"{path} is not a SQLite database",
                hint="point DATABASE_PATH at the llm-proxy database file",
            )
        return
    if not create:
        raise DatabaseConnectionError(f"SQLite database {path} does not exist")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseConnectionError(f"cannot create directory {path.parent}: {exc.strerror}") from None


def is_sqlite_file(path: Path) -> bool:
    """True for an empty file (SQLite treats it as a new database) or one with the SQLite header.

    SQLite itself reads the header (an ``immutable`` connection: no locks, no WAL), never a
    plain ``open()``: closing a descriptor of the file in this process would drop every POSIX
    lock the process holds on it, such as another connection's read or write lock.
    """
    try:
        if path.stat().st_size == 0:
            return True
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    except (OSError, sqlite3.Error):
        return False
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as exc:
        return getattr(exc, "sqlite_errorname", "") not in ("SQLITE_NOTADB", "SQLITE_CANTOPEN")
    finally:
        connection.close()
    return True


def _install_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    """Take transaction control from ``sqlite3`` so DDL is transactional (SQLAlchemy's recipe)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    # Migration connections (foreign keys off) take the write lock when their transaction
    # starts: a deferred BEGIN that later writes gets SQLITE_BUSY at once while the service
    # holds the lock, whereas BEGIN IMMEDIATE waits for the busy timeout.
    begin = "BEGIN" if foreign_keys else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


# -- the migration lock -----------------------------------------------------------------------


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock``, beside its real path.

    A migrator started through a symlink and one started through the real path lock the
    same file.
    """
    from llm_proxy_db.safety.files import real_path

    assert settings.database_path is not None
    path = real_path(settings.database_path)
    return path.with_name(path.name + ".migrate.lock")


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """``flock`` the sidecar lock file for the body (no connection needed); yields the wait."""
    import fcntl

    from llm_proxy_db.safety.files import real_path
    from llm_proxy_db.safety.locking import poll

    del connection
    path = lock_file(settings)
    try:
        fd = _open_lock_file(path, real_path(settings.database_path or path))
    except OSError as exc:
        raise DatabaseConnectionError(
            f"cannot open the migration lock file {path}: {exc.strerror}",
            hint="the database directory must be writable to migrate",
        ) from None
    try:
        waited = poll(lambda: _try_flock(fd), timeout, progress, settings, f"lock file {path}")
        try:
            yield waited
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock_file(path: Path, database: Path) -> int:
    """Open (or create, with the database's mode and owner) the lock file.

    ``flock`` needs no write access, so a lock file another user created (root, say) is
    opened read-only: any user who may write the database can take the lock.
    """
    from llm_proxy_db.safety.files import match_database

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "not a regular file") from None
        return fd
    with contextlib.suppress(OSError):  # a lock file with our own mode still works for us
        match_database(path, database)
    return fd


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# -- the fast startup read --------------------------------------------------------------------


def read_versions(settings: Settings, adopted_ok: bool) -> list[str]:
    """``alembic_version``'s rows with bare ``sqlite3``; markers that never equal a head for an
    adopted database or tokens without id; ``[]`` when there is no file."""
    path = settings.database_path
    if path is None or not path.is_file():
        return []
    connection = sqlite3.connect(path, timeout=30)
    try:
        rows = [row[0] for row in connection.execute(VERSION_QUERY)]
        if not adopted_ok and connection.execute(_ADOPTED).fetchone() is not None:
            return ["(adopted)"]
        if connection.execute(NULL_IDS).fetchone() is not None:
            return ["(tokens without id)"]
        return rows
    finally:
        connection.close()


def schema_cookie(connection: Connection) -> object | None:
    """``PRAGMA schema_version``: SQLite increments it on every schema change."""
    return connection.exec_driver_sql("PRAGMA schema_version").scalar()


def server_family(connection: Connection) -> str:
    """Every SQLite file reflects alike (the schema text is parsed by SQLAlchemy)."""
    del connection
    return "sqlite"


# -- scratch databases ------------------------------------------------------------------------


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A connection, in a transaction, to a new SQLite file in a temporary directory (removed after).

    ``connection`` is not used: every SQLite database behaves alike.
    """
    import tempfile

    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.database import connect

    del connection
    with tempfile.TemporaryDirectory(prefix="llm-proxy-scratch-") as directory:
        settings = Settings(driver=DRIVER, database_path=Path(directory) / "scratch.db")
        with connect(settings, foreign_keys=False) as scratch, scratch.begin():
            yield scratch


# -- the service's history on SQLite ----------------------------------------------------------

# The 2025-12-02 release's goose file 1 fails on every older SQLite file and rolls back: what
# stays is the old shape plus goose_db_version holding the seed row 0 ("version 0").
_FAILED_GOOSE_START = ("0001", "0002", "0003")


def adjust_known_states(states: list[KnownState], prints: Mapping[str, Fingerprint]) -> list[KnownState]:
    """L0, L1, L2 files may carry goose's table with only its seed row (goose "version 0")."""
    from dataclasses import replace

    del prints
    return [
        replace(state, goose_versions=(0, *state.goose_versions)) if state.name in _FAILED_GOOSE_START else state
        for state in states
    ]


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A consistent copy of the database file in ``work_dir`` (a rehearsal's throw-away copy)."""
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects.sqlite_backup import copy_database
    from llm_proxy_db.errors import BackupError

    assert settings.database_path is not None
    copy = work_dir / settings.database_path.name
    try:
        copy_database(settings.database_path, copy)
    except BackupError as exc:  # its hint is about migration backups, not this copy
        raise BackupError(
            exc.message.replace("cannot write the backup", "cannot write the rehearsal copy"),
            hint=f"the copy goes to the temporary directory ({work_dir}): free space there "
            "or point TMPDIR at a directory with room for a copy of the database",
        ) from None
    yield Settings(driver=DRIVER, database_path=copy)


# -- backups and restores (dialects/sqlite_backup) --------------------------------------------


def default_backup_directory(settings: Settings) -> Path:
    """Beside the database's real file."""
    from llm_proxy_db.dialects import sqlite_backup

    return sqlite_backup.default_backup_directory(settings)


def needs_backup(settings: Settings) -> bool:
    """False for a file that does not exist yet or holds no table (nothing to lose)."""
    from llm_proxy_db.dialects import sqlite_backup

    return sqlite_backup.needs_backup(settings)


def backup(settings: Settings, out: Path | None, directory: Path, keep: int) -> Path:
    """A checked copy now: to ``out`` (file or directory), else rotated into ``directory``."""
    from llm_proxy_db.dialects import sqlite_backup

    return sqlite_backup.backup(settings, out, directory, keep)


def take_backup(settings: Settings, revision: str | None, directory: Path, keep: int) -> Path:
    """The checked copy before a schema change, rotated (``keep`` automatic copies kept)."""
    from llm_proxy_db.dialects import sqlite_backup

    return sqlite_backup.take_backup(settings, revision, directory, keep)


def restore(
    settings: Settings, source: Path, directory: Path, *, lock_timeout: float | None,
    progress: Progress | None, force: bool,
) -> RestoreResult:
    """The backup's contents written into the database file in place, in one transaction."""
    from llm_proxy_db.dialects import sqlite_backup

    return sqlite_backup.restore(
        settings, source, directory, lock_timeout=lock_timeout, progress=progress, force=force
    )
