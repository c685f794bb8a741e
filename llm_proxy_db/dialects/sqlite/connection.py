"""Opening a SQLite file: the path checks, the engine (transactional DDL), the fast read."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_proxy_db.config.waits import configured, wait_bound_ms
from llm_proxy_db.dialects.base import RUN_LOG_QUERY, VERSION_QUERY
from llm_proxy_db.dialects.sqlite.base import (
    _ADOPTED,
    _HAS_RUN_LOG,
    _RELATIONS_NAMED,
    _TABLE_NAMES,
    NULL_IDS,
    SQLITE_BUSY_TIMEOUT_MS,
)
from llm_proxy_db.dialects.sqlite.journal import on_new_database
from llm_proxy_db.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from llm_proxy_db.config.settings import Settings


MISSING_HINT = "check DATABASE_PATH (--database-path); `llm-proxy-db setup` creates a new one"

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
    _install_hooks(engine, foreign_keys=foreign_keys, create=create)
    return engine


def busy_timeout_ms() -> int:
    """How long a statement waits for another connection's lock: ``--lock-timeout`` (or
    ``LLM_PROXY_LOCK_TIMEOUT``) when given, else :data:`SQLITE_BUSY_TIMEOUT_MS`."""
    return wait_bound_ms() if configured() else SQLITE_BUSY_TIMEOUT_MS


def check_sqlite_path(path: Path, *, create: bool = True) -> None:
    """Refuse a path that is a directory or a file that is not a SQLite database."""
    if path.is_dir():
        raise DatabaseConnectionError(
            f"{path} is a directory, not a SQLite database file",
            hint="point DATABASE_PATH (--database-path) at the database file, e.g. data/llm-proxy.db",
        )
    if path.exists():
        if not is_sqlite_file(path):
            raise DatabaseConnectionError(
                f"{path} is not a SQLite database",
                hint="point DATABASE_PATH at the llm-proxy database file",
            )
        return
    if not create:
        raise DatabaseConnectionError(
            f"SQLite database {path} does not exist",
            hint=MISSING_HINT,
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseConnectionError(
            f"cannot create directory {path.parent}: {exc.strerror}",
            hint="create it yourself with the right owner, or point DATABASE_PATH elsewhere",
        ) from None


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


def _install_hooks(engine: Engine, *, foreign_keys: bool, create: bool = True) -> None:
    """Take transaction control from ``sqlite3`` so DDL is transactional (SQLAlchemy's recipe);
    a database this engine creates is made in the service's WAL mode (:mod:`.journal`)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()
        if create or not foreign_keys:  # a writer; reads never write, not even a header
            on_new_database(dbapi_connection)

    # Migration connections (foreign keys off) take the write lock when their transaction
    # starts: a deferred BEGIN that later writes gets SQLITE_BUSY at once while the service
    # holds the lock, whereas BEGIN IMMEDIATE waits for the busy timeout.
    begin = "BEGIN" if foreign_keys else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def read_versions(settings: Settings, adopted_ok: bool) -> list[str]:
    """``alembic_version``'s rows with bare ``sqlite3``; markers that never equal a head for an
    adopted database or tokens without id; ``[]`` when there is no file."""
    path = settings.database_path
    if path is None or not path.is_file():
        return []
    connection = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000)
    try:
        rows = [row[0] for row in connection.execute(VERSION_QUERY)]
        if not adopted_ok and connection.execute(_ADOPTED).fetchone() is not None:
            return ["(adopted)"]
        if connection.execute(NULL_IDS).fetchone() is not None:
            return ["(tokens without id)"]
        return rows
    finally:
        connection.close()


def read_run_log(settings: Settings) -> list[tuple[Any, ...]]:
    """The run log's rows with bare ``sqlite3`` (timestamps as stored: text); [] without a log."""
    path = settings.database_path
    if path is None or not path.is_file():
        return []
    connection = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000)
    try:
        if connection.execute(_HAS_RUN_LOG).fetchone() is None:
            return []
        return [tuple(row) for row in connection.execute(RUN_LOG_QUERY)]
    finally:
        connection.close()


def read_tables(settings: Settings, names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The tables SQLAlchemy's ``get_table_names`` lists (internal ``sqlite_`` tables left out)
    and :func:`~.objects.relations_named` for ``names``, with bare ``sqlite3``."""
    connection = _existing(settings)
    try:
        tables = [row[0] for row in connection.execute(_TABLE_NAMES)]
        marks = ", ".join("?" for _ in names)
        kinds = connection.execute(_RELATIONS_NAMED.format(names=marks), names) if names else []
        return tables, {str(name): str(kind) for name, kind in kinds}
    finally:
        connection.close()


def read_broken_references(settings: Settings) -> bool:
    """Whether ``PRAGMA foreign_key_check`` finds a row (what a run or a rehearsal refuses)."""
    connection = _existing(settings)
    try:
        return connection.execute("PRAGMA foreign_key_check").fetchone() is not None
    finally:
        connection.close()


def _existing(settings: Settings) -> sqlite3.Connection:
    """A bare connection to the existing file (never creating it)."""
    path = settings.database_path
    if path is None or not path.is_file():
        raise DatabaseConnectionError(
            f"SQLite database {path} does not exist",
            hint=MISSING_HINT,
        )
    return sqlite3.connect(path, timeout=busy_timeout_ms() / 1000)


def surely_writable(settings: Settings) -> bool:
    """True: no pooler or standby stands between this tool and a file (a read-only file is
    not refused up front, only at the first write)."""
    del settings
    return True
