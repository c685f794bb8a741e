"""SQLite files made the way the service runs them: in WAL mode.

The service opens its database with WAL journaling (reference section 1) and sets it on every
open.  A file this tool creates (or puts in place, a restore) in rollback-journal mode is
switched by the service's first open, and that switch needs the file to itself: while any
other connection holds a write transaction, the service's start-up fails at once with
"database is locked".  So the tool creates files in WAL mode (persistent in the file's header)
and a restore puts its file in place in WAL mode.  Busy timeout and foreign keys are per
connection, not stored in the file: the tool chooses its own (``sqlite.base.SQLITE_BUSY_TIMEOUT_MS``;
foreign keys off while migrating, checked by the revisions).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

SERVICE_JOURNAL_MODE = "wal"


def on_new_database(dbapi_connection: Any) -> None:
    """Put a database that has no page yet (being created by this connection) in WAL mode.

    A database holding anything keeps its mode: the service (or the operator) chose it.
    """
    if dbapi_connection.execute("PRAGMA page_count").fetchone()[0] == 0:
        dbapi_connection.execute(f"PRAGMA journal_mode={SERVICE_JOURNAL_MODE}").fetchall()


def to_service_mode(path: Path) -> None:
    """Switch the (private, unused) file ``path`` to WAL mode before it is put in place."""
    connection = sqlite3.connect(str(path), isolation_level=None)
    try:
        connection.execute(f"PRAGMA journal_mode={SERVICE_JOURNAL_MODE}").fetchall()
    finally:
        connection.close()  # the last connection: the WAL is checkpointed and removed


def journal_mode(path: Path) -> str:
    """The journal mode recorded in the file (read without changing anything)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        connection.close()
