"""Opening the database: engines with the right SQLite behaviour, and clear connection errors.

SQLite through Python's ``sqlite3`` module commits DDL on its own; here the driver's
transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so DDL (a
batch rebuild's ``CREATE TABLE`` included) is part of the revision's transaction and
rolls back with it.  Foreign keys are a per-connection setting that cannot change inside a
transaction, so it is chosen when the connection is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from llm_proxy_db.errors import DatabaseConnectionError
from llm_proxy_db.masking import mask_message
from llm_proxy_db.settings import Settings

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """An engine for ``settings``; SQLite files get transactional DDL and chosen foreign keys.

    ``create=False`` refuses a SQLite path that does not exist yet (reads never create files).
    """
    if settings.is_sqlite:
        assert settings.database_path is not None
        check_sqlite_path(settings.database_path, create=create)
        engine = sa.create_engine(settings.sqlalchemy_url(), poolclass=NullPool)
        _install_sqlite_hooks(engine, foreign_keys=foreign_keys)
        return engine
    return sa.create_engine(settings.sqlalchemy_url(), poolclass=NullPool)


@contextmanager
def connect(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Iterator[Connection]:
    """A connection to the database; failures to open it become one readable error."""
    engine = create_engine(settings, foreign_keys=foreign_keys, create=create)
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise connection_error(settings, exc) from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def connection_error(settings: Settings, exc: BaseException) -> DatabaseConnectionError:
    """Translate a driver error into a message that names the (masked) database."""
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()
    reason = mask_message(detail[0]) if detail else type(exc).__name__
    return DatabaseConnectionError(
        f"cannot open database {settings.describe()}: {reason}",
        hint="check DB_DRIVER, DATABASE_PATH / DATABASE_URL and that the server is running",
    )


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
    """True for an empty file (SQLite treats it as a new database) or one with the SQLite header."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return header in (b"", SQLITE_HEADER)


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    """Take transaction control from ``sqlite3`` so DDL is transactional (SQLAlchemy's recipe)."""

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
