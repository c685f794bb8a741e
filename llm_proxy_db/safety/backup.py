"""Backups and restores, whatever the database: the options here, the work in each dialect.

SQLite copies its file (:mod:`llm_proxy_db.safety.sqlite_backup` with the dialect's checked
copy: rotated; restore in place); PostgreSQL and MySQL/MariaDB run their client tools
(:mod:`llm_proxy_db.safety.server_backup` with the dialect's ``dump``/``load_dump``:
``pg_dump``/``pg_restore``, ``mariadb-dump``/``mariadb``).  This module chooses the backup
directory and the number of backups kept, and hands the rest to the one of those two the
dialect's ``BACKUP_KIND`` names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from llm_proxy_db.config.parsing import DEFAULT_KEEP_BACKUPS, KEEP_BACKUPS_ENV, parse_count
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.events import Progress
from llm_proxy_db.safety import server_backup, sqlite_backup
from llm_proxy_db.safety.backup_result import RestoreResult

# The dialect's BACKUP_KIND -> the module that runs its backups and restores.
_RUNNERS: dict[str, ModuleType] = {"file": sqlite_backup, "dump": server_backup}

BACKUP_DIR_ENV = "LLM_PROXY_BACKUP_DIR"
__all__ = [
    "BACKUP_DIR_ENV", "DEFAULT_KEEP_BACKUPS", "KEEP_BACKUPS_ENV", "RestoreResult", "backup",
    "backup_directory", "keep_backups", "needs_backup", "restore", "take_backup",
]


def backup_directory(settings: Settings, backup_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where automatic backups go: ``backup_dir``, ``LLM_PROXY_BACKUP_DIR``, or the dialect's
    default (beside a SQLite file; the working directory for a server's dumps)."""
    chosen = backup_dir or os.environ.get(BACKUP_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return dialect_for(settings).default_backup_directory(settings)


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
    return _runner(settings).backup(settings, target, directory, keep_backups(keep))


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
    return _runner(settings).take_backup(settings, revision, directory, keep_backups(keep))


def needs_backup(settings: Settings) -> bool:
    """False when there is certainly nothing to lose (a SQLite file that does not exist yet or
    holds no table)."""
    return dialect_for(settings).needs_backup(settings)


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
    return _runner(settings).restore(
        settings, source, directory, lock_timeout=lock_timeout, progress=progress, force=force
    )


def _runner(settings: Settings) -> ModuleType:
    """:mod:`~llm_proxy_db.safety.sqlite_backup` or :mod:`~llm_proxy_db.safety.server_backup`."""
    return _RUNNERS[dialect_for(settings).BACKUP_KIND]
