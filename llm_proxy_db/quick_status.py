"""The startup check at head: one read with the plain driver, no Alembic, no revision graph.

A service (or ``llm-proxy migrate status``) starting against an up-to-date database needs
one fact: does the version table hold exactly the head revision?  Answering it must cost
about as much as a bare driver connect-and-select, so this module imports neither Alembic
nor SQLAlchemy: the head id is the ``head`` line of the committed checksum manifest (which
``migrate verify`` checks against the revision files) and the version table is read with
``sqlite3`` or ``psycopg`` directly.

The check only ever answers "yes, at head" or "not sure": any other state (no database, no
version table, an older or unknown revision, a driver error) sends the caller down the full
path, which knows how to explain it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from llm_proxy_db.manifest import manifest_head

if TYPE_CHECKING:
    from llm_proxy_db.settings import Settings

VERSION_QUERY = "SELECT version_num FROM alembic_version"


def head_revision() -> str | None:
    """The head revision according to the checksum manifest; None when it cannot be read."""
    try:
        return manifest_head()
    except Exception:  # noqa: BLE001 - a missing or broken manifest: the full path explains it
        return None


def at_head(settings: Settings) -> bool:
    """True when the database records exactly the head revision; False when unsure."""
    head = head_revision()
    try:
        rows = _read_sqlite(settings) if settings.is_sqlite else _read_postgres(settings)
    except Exception:  # noqa: BLE001 - any failure means "not sure": the full path explains it
        return False
    return head is not None and rows == [head]


def _read_sqlite(settings: Settings) -> list[str]:
    path = settings.database_path
    if path is None or not path.is_file():
        return []
    connection = sqlite3.connect(path, timeout=30)
    try:
        return [row[0] for row in connection.execute(VERSION_QUERY)]
    finally:
        connection.close()


def _read_postgres(settings: Settings) -> list[str]:
    import psycopg  # only PostgreSQL users pay for importing it

    url = settings.sqlalchemy_url().set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as connection:
        return [row[0] for row in connection.execute(VERSION_QUERY)]
