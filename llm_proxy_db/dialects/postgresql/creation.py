"""Throw-away PostgreSQL places: scratch databases, a rehearsal's copy, a scratch schema rolled back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import scratch
from llm_proxy_db.dialects.postgresql.base import DRIVER
from llm_proxy_db.dialects.postgresql.client import pg_dump, pg_restore
from llm_proxy_db.dialects.scratch import ScratchRecipe
from llm_proxy_db.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A scratch database on the same server holding a consistent copy of ``settings``' database."""
    dump = pg_dump(settings, work_dir / "rehearsal.dump")
    with scratch_database(settings.sqlalchemy_url(), "rehearsal") as copy:
        pg_restore(copy, dump)
        yield copy

SCRATCH = ScratchRecipe(
    driver=DRIVER,
    create_sql='CREATE DATABASE "{name}"',
    drop_sql='DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',  # PostgreSQL 13+
    max_name_length=63,
    privilege_hint="the user needs the CREATEDB privilege",
    isolation_level="AUTOCOMMIT",
)


def scratch_database(server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards (even if in use)."""
    return scratch.scratch_database(SCRATCH, server, purpose)


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A new connection to the same database whose ``search_path`` is a new schema, in a
    transaction that is always rolled back (PostgreSQL's DDL is transactional: nothing stays)."""
    import sqlalchemy as sa

    schema = f"llm_proxy_scratch_{uuid.uuid4().hex[:12]}"
    with connection.engine.connect() as scratch:
        transaction = scratch.begin()
        try:
            scratch.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            scratch.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            yield scratch
        except sa.exc.DBAPIError as exc:
            text = str(exc.orig or exc).strip()
            raise ConfigError(
                text.splitlines()[0] if text else type(exc).__name__,
                hint="the database user needs the CREATE privilege on the database for a scratch "
                "schema that is always rolled back (GRANT CREATE ON DATABASE ... TO ...)",
            ) from None
        finally:
            transaction.rollback()
