"""Backups and restores, whatever the database: the options here, the work in each dialect.

SQLite copies its file (:mod:`llm_proxy_db.dialects.sqlite_backup`: a checked, rotated copy;
restore in place); PostgreSQL and MySQL/MariaDB run their client tools
(:mod:`llm_proxy_db.dialects.server_backup`: ``pg_dump``/``pg_restore``,
``mariadb-dump``/``mariadb``).  This module chooses the backup directory and the number of
backups kept, and hands the rest to ``settings.dialect``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_proxy_db.config.parsing import DEFAULT_KEEP_BACKUPS, KEEP_BACKUPS_ENV, parse_count
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.migration.executor import Progress

BACKUP_DIR_ENV = "LLM_PROXY_BACKUP_DIR"
__all__ = [
    "BACKUP_DIR_ENV", "DEFAULT_KEEP_BACKUPS", "KEEP_BACKUPS_ENV", "RestoreResult", "backup",
    "backup_directory", "keep_backups", "needs_backup", "restore", "take_backup",
]


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the database, the file restored, its revision, the safety copy kept
    (``None``: nothing was there to keep), and where the backup was taken."""

    database: str
    restored_from: Path
    revision: str | None
    safety_copy: Path | None
    replaced_damaged: bool = False
    origin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``db restore --json``)."""
        return {
            "database": self.database,
            "restored_from": str(self.restored_from),
            "revision": self.revision,
            "safety_copy": str(self.safety_copy) if self.safety_copy else None,
            "replaced_damaged": self.replaced_damaged,
            "origin": self.origin,
        }


def backup_directory(settings: Settings, backup_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where automatic backups go: ``backup_dir``, ``LLM_PROXY_BACKUP_DIR``, or the dialect's
    default (beside a SQLite file; the working directory for a server's dumps)."""
    chosen = backup_dir or os.environ.get(BACKUP_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return settings.dialect.default_backup_directory(settings)


def keep_backups(value: int | None = None, env: Mapping[str, str] | None = None) -> int:
    """How many automatic backups to keep: ``value``, ``LLM_PROXY_KEEP_BACKUPS``, or 5."""
    if value is not None:
        return parse_count("--keep-backups", value)
    raw = (os.environ if env is None else env).get(KEEP_BACKUPS_ENV, "")
    return parse_count(KEEP_BACKUPS_ENV, raw) if raw.strip() else DEFAULT_KEEP_BACKUPS


def backup(
    settings: Settings,
    out: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
) -> Path:
    """Back the database up now; returns the file written (checked before returning).

    Without ``out`` the backup goes into the backup directory under the automatic name;
    ``out`` names a file that must not exist, or a directory.  Server databases are dumped
    with their dialect's tool (``pg_dump --format=custom``, ``mariadb-dump --single-transaction``).
    """
    target = Path(out).expanduser() if out is not None else None
    directory = backup_directory(settings, backup_dir)
    return settings.dialect.backup(settings, target, directory, keep_backups(keep))


def take_backup(
    settings: Settings,
    revision: str | None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    keep: int | None = None,
) -> Path:
    """The automatic backup before a schema change (at ``revision``), checked; old automatic
    SQLite backups beyond ``keep`` are rotated away."""
    directory = backup_directory(settings, backup_dir)
    return settings.dialect.take_backup(settings, revision, directory, keep_backups(keep))


def needs_backup(settings: Settings) -> bool:
    """False when there is certainly nothing to lose (a SQLite file that does not exist yet or
    holds no table)."""
    return settings.dialect.needs_backup(settings)


def restore(
    settings: Settings,
    file: str | os.PathLike[str],
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    lock_timeout: float | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> RestoreResult:
    """Replace the database's contents with the backup ``file``, under the migration lock.

    The backup is checked before anything is touched, and what the database held is kept as
    a safety copy in the backup directory first.  ``force``: on SQLite, restore a backup of
    another database; on a server, replace a database that is not empty (refused otherwise).
    """
    source = Path(file).expanduser()
    directory = backup_directory(settings, backup_dir)
    return settings.dialect.restore(
        settings, source, directory, lock_timeout=lock_timeout, progress=progress, force=force
    )
