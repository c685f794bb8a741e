"""The SQLite migration lock: ``flock`` on a sidecar file, which the kernel frees when the process dies."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.dialects.locks import poll
from llm_proxy_db.errors import DatabaseConnectionError
from llm_proxy_db.files import match_database, real_path

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.events import Progress


def lock_file(settings: Settings) -> Path:
    """The sidecar file a SQLite database's migrators ``flock``, beside its real path.

    A migrator started through a symlink and one started through the real path lock the
    same file.
    """
    assert settings.database_path is not None
    path = real_path(settings.database_path)
    return path.with_name(path.name + ".migrate.lock")


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """``flock`` the sidecar lock file for the body (no connection needed); yields the wait."""
    import fcntl

    del connection
    path = lock_file(settings)
    try:
        fd = _open_lock_file(path, real_path(settings.database_path or path))
    except OSError as exc:
        raise DatabaseConnectionError(
            f"cannot open the migration lock file {path}: {exc.strerror}",
            hint="the database directory must be writable to migrate",
        ) from None
    try:
        waited = poll(lambda: _try_flock(fd), timeout, progress, settings, f"lock file {path}")
        try:
            yield waited
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock_file(path: Path, database: Path) -> int:
    """Open (or create, with the database's mode and owner) the lock file.

    ``flock`` needs no write access, so a lock file another user created (root, say) is
    opened read-only: any user who may write the database can take the lock.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "not a regular file") from None
        return fd
    with contextlib.suppress(OSError):  # a lock file with our own mode still works for us
        match_database(path, database)
    return fd


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
