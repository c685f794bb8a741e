"""The one recipe for a MySQL engine: PyMySQL through SQLAlchemy, no pool.

Kept apart from :mod:`.connection` (which reads the operator's URL and imports the dialect's
constants) so that the revisions' batched phases (:mod:`.pacing`, imported by :mod:`.ddl`) can
open sessions on replicas and Galera nodes the same way without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine


def engine_for(url: URL) -> Engine:
    """An engine without a pool for ``url`` (each command opens what it needs, once)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(url, poolclass=NullPool)
