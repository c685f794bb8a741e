"""Files this tool writes next to a database: real paths, modes and owners, temporary names.

* A database is named, locked, backed up and swapped by its real path (symlinks resolved
  once), so a link and its target are one database.
* Every file written for a database (backup, safety copy, dump, lock file) gets the
  database's mode and owner, never wider; it is created ``0600`` so its content is never
  readable by others while it is being written.
* Copies are written under a temporary name (``.<final name>.<pid>.tmp``) and renamed only
  once checked; a run killed with SIGKILL leaves such a file, which the next run removes
  (its process is gone) and which is never counted as a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_MODE = 0o600
_TEMP = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)\.tmp(?:-journal|-wal|-shm)?$")
_SIDE_FILES = ("-journal", "-wal", "-shm")


def real_path(path: Path) -> Path:
    """The database's real path: ``~`` expanded, symlinks resolved, absolute."""
    return path.expanduser().resolve()


def identity(database: Path) -> str:
    """A short, stable name component for one database: a digest of its real path."""
    return hashlib.sha256(str(real_path(database)).encode()).hexdigest()[:10]


def temporary_name(final: Path) -> Path:
    """Where ``final`` is written before it is checked and renamed into place."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (fails if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))


def match_database(path: Path, database: Path | None) -> None:
    """Give ``path`` the mode and owner of ``database`` (never wider than 0600 without one).

    The owner is copied when the process may (root); otherwise the file stays ours with
    the database's mode bits, which never adds access the database does not give.
    """
    if database is None or not database.exists():
        os.chmod(path, PRIVATE_MODE)
        return
    info = database.stat()
    with contextlib.suppress(PermissionError):
        os.chown(path, info.st_uid, info.st_gid)
    os.chmod(path, stat.S_IMODE(info.st_mode) & 0o666)


def remove_with_side_files(path: Path) -> None:
    """Remove a partial SQLite copy and the journal files SQLite may have left beside it."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        with contextlib.suppress(OSError):
            candidate.unlink()


def remove_leftovers(directory: Path) -> list[Path]:
    """Remove temporary copies left in ``directory`` by runs that no longer exist."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _TEMP.match(path.name)
        if match and not _alive(int(match.group("pid"))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


@contextmanager
def written_then_renamed(final: Path, database: Path | None) -> Iterator[Path]:
    """Yield a private temporary path; on success give it ``database``'s mode and owner and
    rename it to ``final``.  On any failure or signal the temporary file is removed."""
    temporary = temporary_name(final)
    create_private(temporary)
    try:
        yield temporary
        match_database(temporary, database)
        fsync_path(temporary)  # durable before it takes the name anyone relies on
        os.replace(temporary, final)
        fsync_path(final.parent)
    except BaseException:
        remove_with_side_files(temporary)
        raise
    remove_with_side_files(temporary)  # only side files can remain after the rename
