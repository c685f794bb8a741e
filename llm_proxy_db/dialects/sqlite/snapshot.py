"""A byte copy of a SQLite database file under a pinned snapshot, checked while it is copied.

SQLite's online backup API copies a database one page at a time through its pager (about
3-4x the time of ``cp`` for a large file).  When the database file alone holds a
consistent snapshot, its bytes can be copied directly instead:

- **rollback-journal mode**: a read transaction holds the SHARED lock, so no writer can
  commit into the file while it is copied (writers wait, as they do for the backup API);
- **WAL mode**: the WAL is checkpointed (PASSIVE, which blocks no one) and truncated
  (``wal_checkpoint(TRUNCATE)``, which holds the write lock only while it waits, at most
  50 ms, for readers still in the WAL); a read transaction that then starts while the WAL
  file is still empty reads the database file only, and SQLite lets no checkpoint write into
  that file until the transaction ends.  The service's writers go on appending to the WAL
  meanwhile.  If a writer got in first (the WAL is not empty once the transaction has
  started), the attempt is retried, then left to the backup API.

Both conditions are checked inside the transaction (its journal mode, the WAL file empty), so
a switch of journal mode by another connection just before cannot slip past.
``PRAGMA quick_check`` runs on the same snapshot in a second thread while ``cp`` (a child
process: see :func:`_copy_bytes`) copies the bytes, so the check costs no extra pass over the
file: the copy holds exactly the bytes that were checked.  The copy's fsync starts as soon as
the bytes are written and is awaited after the read transaction ends, so the service's
writers never wait for the disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from llm_proxy_db.errors import BackupError
from llm_proxy_db.files import fsync_path

ATTEMPTS = 3
CHECKPOINT_BUSY_MS = 50
READ_BUSY_MS = 30_000


def snapshot_copy(source: Path, target: Path) -> bool:
    """Copy ``source`` into the (empty) file ``target`` byte for byte, checked and synced.

    Returns False, with ``target`` left empty, when no snapshot of the file alone could be
    pinned (a WAL the service keeps writing into, a file opened read-only); the caller then
    uses the backup API.  Raises :class:`BackupError` when ``quick_check`` finds the
    database damaged.
    """
    reader = sqlite3.connect(
        source.as_uri(), uri=True, isolation_level=None, check_same_thread=False,
        timeout=READ_BUSY_MS / 1000,
    )
    try:
        if not _pin_snapshot(reader, source):
            return False
        try:
            rows, syncer = _copy_while_checking(reader, source, target)
        except _NoCopier:
            return False
        finally:
            reader.execute("COMMIT")  # the service's writers need not wait for the disk
    finally:
        reader.close()
    syncer.finish()
    if rows != ["ok"]:
        raise BackupError(
            f"{source} failed PRAGMA quick_check: {'; '.join(map(str, rows[:3]))}",
            hint="the database itself is damaged; the backup was not kept",
        )
    return True


def _pin_snapshot(reader: sqlite3.Connection, source: Path) -> bool:
    """Start a read transaction whose snapshot is the database file alone (True), or give up.

    Decided inside the transaction: the journal mode the transaction runs in (another
    connection may switch it just before) and, in WAL mode, an empty WAL file.
    """
    for _attempt in range(ATTEMPTS):
        if _journal_mode(reader) == "wal":
            _empty_wal(reader)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if _wal_bytes(source) == 0 and _journal_mode(reader) in _FILE_ONLY_MODES:
            return True
        reader.execute("COMMIT")
    return False


# With these, a read transaction's snapshot is the file alone once the WAL file is empty
# (WAL: read-lock 0, which no checkpoint writes past; rollback modes: the SHARED lock).
_FILE_ONLY_MODES = ("wal", "delete", "truncate", "persist")


def _journal_mode(reader: sqlite3.Connection) -> str:
    return str(reader.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _empty_wal(reader: sqlite3.Connection) -> None:
    """Checkpoint the WAL into the file, then truncate it if that can be done at once.

    The PASSIVE pass copies the frames without blocking anyone; TRUNCATE then holds the
    write lock only while it waits (at most ``CHECKPOINT_BUSY_MS``) for readers still using
    the WAL.  Busy, or a read-only file: the WAL stays and the caller gives up.
    """
    reader.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
    try:
        with contextlib.suppress(sqlite3.Error):
            reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            reader.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        reader.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")


def _wal_bytes(source: Path) -> int:
    try:
        return os.stat(f"{source}-wal").st_size
    except FileNotFoundError:
        return 0


class _Background(threading.Thread):
    """A daemon thread whose exception is kept and raised again by :meth:`finish`."""

    def __init__(self, name: str, work: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.result: object = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by finish()
            self.error = exc

    def finish(self) -> object:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def _copy_while_checking(
    reader: sqlite3.Connection, source: Path, target: Path
) -> tuple[list[object], _Background]:
    """Copy the snapshot's bytes while another thread runs ``quick_check`` on it; the fsync
    of the copy is started as soon as the bytes are written (returned: finish it later)."""
    page_size = reader.execute("PRAGMA page_size").fetchone()[0]
    page_count = reader.execute("PRAGMA page_count").fetchone()[0]
    checker = _Background(
        "llm-proxy-quick-check",
        lambda: [row[0] for row in reader.execute("PRAGMA quick_check").fetchall()],
    )
    try:
        _copy_bytes(source, target, page_size * page_count)
        syncer = _Background("llm-proxy-fsync", lambda: fsync_path(target))
        rows = checker.finish()
    except BaseException:
        reader.interrupt()  # a failed copy, or a signal while waiting: stop the check now
        checker.join()
        raise
    return list(rows), syncer  # type: ignore[call-overload]


# The byte copy runs in a child process (``cp``).  POSIX record locks belong to a process and
# its file: closing *any* descriptor of the database in this process would drop every lock
# this process holds on it, SQLite's read lock of the pinned snapshot included, letting a
# writer in while the copy is checked.


class _NoCopier(Exception):
    """``cp`` is not there or cannot be started here: the caller uses the backup API."""


def _copy_bytes(source: Path, target: Path, length: int) -> None:
    """The first ``length`` bytes of ``source`` into ``target``, by ``cp`` then a truncate
    (the file holds no more than the snapshot's pages; any tail beyond them is not copied)."""
    copier = shutil.which("cp")
    if copier is None:
        raise _NoCopier
    try:
        completed = subprocess.run(
            [copier, "--", str(source), str(target)], stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
    except OSError as exc:
        raise _NoCopier from exc
    if completed.returncode != 0:
        lines = completed.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1].rpartition(": ")[2] if lines else f"cp exited with {completed.returncode}"
        raise OSError(errno.EIO, reason)
    if target.stat().st_size < length:
        raise OSError(errno.EIO, "the database file ended before its last page")
    os.truncate(target, length)
