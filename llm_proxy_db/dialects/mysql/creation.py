"""Throw-away MySQL databases: scratch databases, a rehearsal's copy, known states' scratch place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import scratch
from llm_proxy_db.dialects.connecting import connect
from llm_proxy_db.dialects.drivers import require_driver
from llm_proxy_db.dialects.mysql.base import DRIVER, DRIVER_PACKAGE
from llm_proxy_db.dialects.mysql.client import dump, load_dump
from llm_proxy_db.dialects.mysql.connection import create_engine, utf8_password
from llm_proxy_db.dialects.mysql.writable import refuse_unwritable
from llm_proxy_db.dialects.scratch import ScratchRecipe

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A scratch database on the same server holding a consistent copy of ``settings``' database.

    Refused on a read-only server or a replica, before anything is written (the scratch
    database would be created there and diverge from its primary)."""
    check_copy_source(settings)
    copied = dump(settings, work_dir / "rehearsal.sql")
    with scratch_database(settings.sqlalchemy_url(), "rehearsal") as copy:
        load_dump(copy, copied)
        yield copy

def check_copy_source(settings: Settings) -> None:
    """What :func:`copy_of` refuses before copying: a read-only server or a replica, a Galera
    node not Synced (exit 3)."""
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            refuse_unwritable(settings, connection)
    finally:
        engine.dispose()


SCRATCH = ScratchRecipe(
    driver=DRIVER,
    create_sql="CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    drop_sql="DROP DATABASE IF EXISTS `{name}`",
    max_name_length=64,
    privilege_hint="the user needs the CREATE and DROP privileges on the server",
    connect_args=utf8_password,
)


def scratch_database(server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards."""
    require_driver(*DRIVER_PACKAGE)
    return scratch.scratch_database(SCRATCH, server, purpose)


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A connection to a scratch database on the server of ``connection`` (MySQL has no
    transactional DDL to roll back, so the database is dropped instead)."""
    server = connection.engine.url
    with scratch_database(server, "states") as settings, connect(settings, foreign_keys=False) as scratch:
        yield scratch
