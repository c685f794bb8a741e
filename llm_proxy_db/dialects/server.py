"""What the server dialects (PostgreSQL, MySQL/MariaDB) share in the protocol's backup part."""

from __future__ import annotations

from pathlib import Path

from llm_proxy_db.config.settings import Settings


def default_backup_directory(settings: Settings) -> Path:
    """The working directory (a server database has no file to sit beside)."""
    del settings
    return Path.cwd()


def needs_backup(settings: Settings) -> bool:
    """A server database may always hold something worth a dump."""
    del settings
    return True
