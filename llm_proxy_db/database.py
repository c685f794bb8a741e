"""Opening the database: each dialect's engine, and clear connection errors.

What an engine does per dialect (SQLite's transactional DDL and foreign-key choice, say)
lives in the dialect's module under :mod:`llm_proxy_db.dialects`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llm_proxy_db.config.masking import mask_message
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import DatabaseConnectionError


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """The dialect's engine for ``settings`` (SQLite: transactional DDL, chosen foreign keys).

    ``create=False`` refuses a SQLite path that does not exist yet (reads never create files).
    """
    return settings.dialect.create_engine(settings, foreign_keys=foreign_keys, create=create)


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
