"""A byte copy of a SQLite database file under a pinned snapshot, checked while it is copied.

SQLite's online backup API copies a database one page at a time through its pager (about
3-4x the time of ``cp`` for a large file).  When the database file alone holds a
consistent snapshot, its bytes can be copied directly instead:

- **rollback-journal mode**: a read transaction holds the SHARED lock, so no writer can
  commit into the file while it is copied (writers wait, as they do for the backup API);
- **WAL mode**: the WAL is checkpointed and truncated first (``wal_checkpoint(TRUNCATE)``,
  with a short busy timeout so the service's writers are not held up); a read transaction
  that then starts while the WAL file is still empty reads the database file only, and SQLite
  lets no checkpoint write into that file until the transaction ends.  The service's writers
  go on appending to the WAL meanwhile.  If a writer got in first (the WAL is not empty once
  the transaction has started), the attempt is retried, then left to the backup API.

``PRAGMA quick_check`` runs on the same snapshot in a second thread while the bytes are
copied and synced, so the check costs no extra pass over the file: the copy holds exactly the
bytes that were checked.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from llm_proxy_db.errors import BackupError

ATTEMPTS = 3
CHECKPOINT_BUSY_MS = 100
READ_BUSY_MS = 30_000
_CHUNK = 64 * 2**20


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
            rows = _copy_while_checking(reader, source, target)
        finally:
            reader.execute("COMMIT")
    finally:
        reader.close()
    if rows != ["ok"]:
        raise BackupError(
            f"{source} failed PRAGMA quick_check: {'; '.join(map(str, rows[:3]))}",
            hint="the database itself is damaged; the backup was not kept",
        )
    return True


def _pin_snapshot(reader: sqlite3.Connection, source: Path) -> bool:
    """Start a read transaction whose snapshot is the database file alone (True), or give up."""
    wal = reader.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    for _attempt in range(ATTEMPTS):
        if wal:
            _truncate_wal(reader)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not wal or _wal_bytes(source) == 0:
            return True
        reader.execute("COMMIT")
    return False


def _truncate_wal(reader: sqlite3.Connection) -> None:
    """Checkpoint and truncate the WAL if that can be done at once (never waits long)."""
    reader.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
    try:
        with contextlib.suppress(sqlite3.Error):  # busy, or a read-only file: no fast copy
            reader.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        reader.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")


def _wal_bytes(source: Path) -> int:
    try:
        return os.stat(f"{source}-wal").st_size
    except FileNotFoundError:
        return 0


def _copy_while_checking(reader: sqlite3.Connection, source: Path, target: Path) -> list[object]:
    """Copy and fsync the snapshot's bytes while another thread runs ``quick_check`` on it."""
    page_size = reader.execute("PRAGMA page_size").fetchone()[0]
    page_count = reader.execute("PRAGMA page_count").fetchone()[0]
    result: dict[str, object] = {}

    def check() -> None:
        try:
            result["rows"] = [row[0] for row in reader.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as exc:
            result["error"] = exc

    checker = threading.Thread(target=check, name="llm-proxy-quick-check", daemon=True)
    checker.start()
    try:
        _copy_bytes(source, target, page_size * page_count)
    except BaseException:
        reader.interrupt()
        raise
    finally:
        checker.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return list(result["rows"])  # type: ignore[call-overload]


def _copy_bytes(source: Path, target: Path, length: int) -> None:
    """The first ``length`` bytes of ``source`` into ``target``, synced to disk."""
    with open(source, "rb") as reading, open(target, "r+b") as writing:
        writing.truncate(0)
        done = 0
        while done < length:
            done += _copy_chunk(reading.fileno(), writing.fileno(), done, min(_CHUNK, length - done))
        writing.flush()
        os.fsync(writing.fileno())


def _copy_chunk(reading: int, writing: int, offset: int, count: int) -> int:
    """Copy one chunk in the kernel when it can (``copy_file_range``), else through memory."""
    try:
        copied = os.copy_file_range(reading, writing, count, offset, offset)
    except OSError:
        copied = 0
    if copied <= 0:
        data = os.pread(reading, count, offset)
        if not data:
            raise OSError(f"the database file ended before its last page (offset {offset})")
        copied = os.pwrite(writing, data, offset)
    return copied
