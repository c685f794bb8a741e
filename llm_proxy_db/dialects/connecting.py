"""Opening the database: the dialect's engine, and one readable error when it cannot be opened.

:mod:`llm_proxy_db.database` offers these to the layers above; the dialects use them here
(a scratch database, a second connection) without reaching up.  SQLAlchemy is imported when
a connection is opened, not when this module is: the fast startup path imports the dialect
packages without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llm_proxy_db.config.masking import mask_message
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """The dialect's engine for ``settings`` (SQLite: transactional DDL, chosen foreign keys).

    ``create=False`` refuses a SQLite path that does not exist yet (reads never create files).
    """
    return dialect_for(settings).create_engine(settings, foreign_keys=foreign_keys, create=create)


@contextmanager
def connect(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Iterator[Connection]:
    """A connection to the database; failures to open it become one readable error."""
    import sqlalchemy as sa  # SQLAlchemy only once a connection is opened (start-up time)

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
