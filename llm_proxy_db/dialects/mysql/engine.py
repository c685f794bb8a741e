"""The one recipe for a MySQL engine: PyMySQL through SQLAlchemy, no pool.

Kept apart from :mod:`.connection` (which reads the operator's URL and imports the dialect's
constants) so that the revisions' batched phases (:mod:`.pacing`, imported by :mod:`.ddl`) can
open sessions on replicas and Galera nodes the same way without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine


def engine_for(url: URL) -> Engine:
    """An engine without a pool for ``url`` (each command opens what it needs, once)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(url, poolclass=NullPool, connect_args=utf8_password(url))


def utf8_password(url: URL) -> dict[str, Any]:
    """PyMySQL's ``password`` argument as UTF-8 bytes (empty without a password).

    PyMySQL encodes a text password as latin-1 (a ``€`` cannot be sent at all, an ``ä`` is
    sent as one byte), while the service's Go driver and the ``mariadb`` client send the
    password's UTF-8 bytes, which is what the server hashed at ``CREATE USER``; PyMySQL
    passes bytes through unchanged.
    """
    return {"password": str(url.password).encode("utf-8")} if url.password else {}
