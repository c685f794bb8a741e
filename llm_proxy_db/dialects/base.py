"""What every dialect module provides, so the rest of the package can stay dialect-free.

A dialect module is a plain module whose functions match :class:`Dialect`; nothing is
instantiated.  The protocol is written for all three dialects (SQLite, PostgreSQL, MySQL),
even where today only MySQL implements it through it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

    from llm_proxy_db.settings import Settings


class Dialect(Protocol):
    """The dialect-specific jobs: configuration, connecting, locking, backups, scratch databases."""

    #: ``DB_DRIVER`` value (the service's spelling) and SQLAlchemy's dialect name.
    DRIVER: str
    SQLALCHEMY_NAME: str

    def parse_database_url(self, raw: str) -> URL:
        """The operator's ``DATABASE_URL`` as a SQLAlchemy URL (passwords kept, never printed)."""
        ...

    def try_migration_lock(self, connection: Connection) -> bool:
        """Try once to take the migration lock on ``connection``; True when taken."""
        ...

    def release_migration_lock(self, connection: Connection) -> None:
        """Release what :meth:`try_migration_lock` took (a dead connection released it already)."""
        ...

    def read_versions(self, settings: Settings, adopted_ok: bool) -> list[str]:
        """The version table's rows, with the lightest client available (fast startup path)."""
        ...

    def backup_command(self, settings: Settings, target: Path) -> tuple[list[str], dict[str, str]]:
        """The dump command line and the extra environment (the password) for a backup into ``target``."""
        ...

    def scratch_database(self, server: URL) -> AbstractContextManager[Settings]:
        """A new empty database on ``server`` for verify/rehearse/known states, dropped afterwards."""
        ...


Progress = Callable[[str], None]
